"""Small chapter 3-4 studies: linear regression, weight decay, numerical stability."""
