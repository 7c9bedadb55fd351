"""kerasdl: deep learning end to end in TensorFlow 2 / Keras 3, from NumPy neurons to edge export.

Importing the package is cheap: TensorFlow loads only when a module that needs it is imported
(`kerasdl.pipeline` on an exported artifact never loads it).
"""

from kerasdl.pipelines import pipeline

__version__ = "0.1.0"
__all__ = ["pipeline"]
