"""kerasdl: deep learning end to end in TensorFlow 2 / Keras 3, from NumPy neurons to edge export.

Importing the package is cheap: TensorFlow loads only when a module that needs it is imported.
"""

__version__ = "0.1.0"
