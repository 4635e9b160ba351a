"""Fashion-MNIST: fetching and parsing the IDX files, the six models, and their training loop."""
