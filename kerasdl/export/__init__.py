"""Export trained models for serving and the edge: SavedModel, TFLite (fp32, fp16, dynamic-range, int8), ONNX.

`exporter.export_run(run_dir, format)` writes the artifact, `preprocessing.json` (what the TF-free runner
needs) and `export.json` (size, op check, parity against the Keras model on test data, latency).
Modules: formats (names and quantization), edge_model (rewrites for builtin-op conversion),
saved_model, tflite, onnx (one converter each), exporter. Parity and its targets belong to the task
(kerasdl.tasks). This package file imports nothing heavy, so the CLI can list formats without loading
TensorFlow.
"""
