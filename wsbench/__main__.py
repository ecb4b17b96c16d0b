"""``python -m wsbench``: the CLI, also the entry point for ``torchrun --nproc_per_node N -m wsbench run ...``."""

from .cli import main

if __name__ == "__main__":
    main()
