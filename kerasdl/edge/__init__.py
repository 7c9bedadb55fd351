"""The edge side: `runner.py` runs exported .tflite/.onnx classifiers with numpy and a runtime, no TensorFlow.

`runner.py` is standalone (a user copies that one file to a device; `export/runner.py` links to it) and
`kerasdl infer` imports it, so there is one copy of the code that runs on devices.
"""
