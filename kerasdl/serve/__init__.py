"""Serving: a model repository behind a Flask app (JSON API and web page) under waitress, and a Streamlit app.

    kerasdl serve MODEL_DIR [--host 127.0.0.1] [--port 8000] [--workers N] [--api-key-env NAME]
    kerasdl app MODEL_DIR

The models run through the TF-free edge runner (.tflite, .onnx), or TensorFlow for a SavedModel or a run
directory; see repository (what is served), inputs (what a request may send), predictors (each task's answer),
batching (micro-batches), app (routes, errors, headers) and server (waitress, binding rules).
"""
