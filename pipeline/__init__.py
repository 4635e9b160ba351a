"""kaggle-pipeline: the D2L chapter 3-4 recipes as a reproducible Kaggle pipeline.

One setting is made here, before any module runs a matrix product: Intel's MKL, which torch's
CPU build calls for its matrix products, picks its code path by processor (an AVX-512 kernel on
one machine, an AVX2 kernel on another) and the two round differently, so the same commit
trained on two machines would give models that differ in the last bits and committed metrics
that differ in the fifth decimal. `MKL_CBWR=AVX2` (MKL's conditional numerical reproducibility)
takes the AVX2 path on every x86 processor that has it, so a fresh clone's `make` reproduces the
committed results byte for byte; torch's own kernels and the other libraries give the same bits
whatever the thread count. MKL reads the variable at its first call, so setting it on import of
the package is early enough; a value the user set is kept (docs/pipeline.md, "Reproducible
results").
"""

import os

os.environ.setdefault("MKL_CBWR", "AVX2")
