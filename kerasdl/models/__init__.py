"""Model families; importing this package registers every model in `kerasdl.registry`.

Each builder makes its output layer `dtype="float32"` (Keras's mixed-precision rule): under `--precision
mixed_*` the hidden layers compute in 16 bits, while logits, losses and metrics stay float32.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
