"""Per task: a checked request in, the task's answer out, as plain JSON.

Each predictor is `predict(model, body, infer, limits) -> dict`. `infer(batch) -> outputs` runs the model on
normalized inputs; for the tasks whose requests are one forward pass (classification, segmentation,
detection, reconstruction, forecasting, regression) it is the micro-batcher, so concurrent requests share a
call. Tasks that loop over a model step (generation of text, translation) call the model directly, a step at
a time. All pre- and post-processing is the edge runner's own (one copy of it: what a device does, the server
does; a table's rows are prepared by the runner's code that training uses too).
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable

import numpy as np

from kerasdl.edge import runner
from kerasdl.edge.runner import Preprocessing, RunnerError, softmax
from kerasdl.serve.backends import ServedModel
from kerasdl.serve.inputs import BadRequest, Body, Limits, array, image, option, table_rows, texts

Infer = Callable[[np.ndarray], np.ndarray]
Predictor = Callable[[ServedModel, Body, Infer, Limits], dict[str, Any]]
PREDICTORS: dict[str, Predictor] = {}
MAX_GENERATED_IMAGES = 64


def predictor(task: str) -> Callable[[Predictor], Predictor]:
    def register(function: Predictor) -> Predictor:
        PREDICTORS[task] = function
        return function

    return register


def predict(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """The task's answer; an input the runner rejects (a prompt outside the vocabulary...) is a BadRequest."""
    if model.task not in PREDICTORS:
        raise BadRequest(f"the server does not answer {model.task!r} models", 501)
    try:
        return PREDICTORS[model.task](model, body, infer, limits)
    except RunnerError as err:
        raise BadRequest(str(err)) from None


def png_base64(pixels: np.ndarray) -> str:
    """An 8-bit image (gray 2-D or RGB) as a base64 PNG, the form JSON carries images in."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def raw_inputs(model: ServedModel, body: Body, limits: Limits) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Raw pixels (n, *shape) from an uploaded image (resized to the input, as the runner reads files) or from
    `{"inputs": [...]}`; and the uploaded image's own (width, height)."""
    spec = model.preprocessing
    if body.image is None:
        return array(body, spec.shape, limits), None
    picture = image(body, limits, _channels(spec))
    return spec.image_pixels(picture)[np.newaxis], picture.size


def model_inputs(model: ServedModel, body: Body, limits: Limits) -> np.ndarray:
    """A batch the model takes: a table's rows prepared as in training, or normalized raw inputs."""
    spec = model.preprocessing
    if spec.kind == "tabular":
        return spec.prepare_rows(*table_rows(body, limits), "the request")
    return spec.normalize(raw_inputs(model, body, limits)[0])


def _channels(spec: Preprocessing) -> int:
    if len(spec.shape) != 3:
        raise BadRequest(f"this model takes arrays of shape {list(spec.shape)}, not images: send {{\"inputs\": [...]}}")
    return spec.shape[-1]


# --- classification ----------------------------------------------------------------------------------------


@predictor("classification")
def classify(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """Labels and scores: per input, the best label, the top-k and every class's probability."""
    spec, names = model.preprocessing, model.preprocessing.class_names
    k = option(body, "top_k", int, min(3, len(names)), 1, len(names))
    x = spec.encoder.encode(texts(body, limits)) if spec.kind == "text" else model_inputs(model, body, limits)
    probabilities = softmax(infer(x))
    return {"classes": names, "predictions": [
        {"label": names[int(row.argmax())], "score": float(row.max()),
         "top_k": [{"label": names[i], "score": float(row[i])} for i in np.argsort(-row)[:k]],
         "scores": [round(float(p), 6) for p in row]}
        for row in probabilities
    ]}


# --- segmentation and detection: one image -----------------------------------------------------------------


@predictor("segmentation")
def segment(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """A class per pixel at the image's own size: a PNG mask (class index scaled to 0..255, base64) and each
    class's share of the pixels."""
    from PIL import Image

    spec = model.preprocessing
    if body.image is not None and spec.spec.get("tiles"):  # full-resolution tiles, as the model learned
        picture = image(body, limits, _channels(spec))
        pixels = np.asarray(picture, np.float32).reshape(picture.size[1], picture.size[0], -1) * (spec.pixel_max / 255.0)
        classes = runner.segment_tiles(lambda raw: infer(spec.normalize(raw)), pixels, spec.shape[0])
    else:
        raw, size = raw_inputs(model, body, limits)
        if len(raw) != 1:
            raise BadRequest(f"segmentation takes one image per request, got {len(raw)}")
        predicted = infer(spec.normalize(raw))[0].argmax(axis=-1).astype(np.uint8)
        size = size or (spec.shape[1], spec.shape[0])
        classes = np.asarray(Image.fromarray(predicted).resize(size, Image.NEAREST))
    names = spec.class_names
    height, width = classes.shape
    return {"classes": names, "width": width, "height": height,
            "mask_png": png_base64((classes * (255 // max(1, len(names) - 1))).astype(np.uint8)),
            "class_fractions": {name: float(np.mean(classes == k)) for k, name in enumerate(names)}}


@predictor("detection")
def detect(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """Boxes in the image's own pixels, after the runner's CenterNet decoding and NMS."""
    spec = model.preprocessing
    raw, size = raw_inputs(model, body, limits)
    width, height = size or (spec.shape[1], spec.shape[0])
    threshold = option(body, "score_threshold", float, spec.spec["score_threshold"], 0.0, 1.0)
    found = runner.decode_centernet(infer(spec.normalize(raw)), len(spec.class_names), threshold,
                                    spec.spec["iou_threshold"], spec.spec["max_detections"])
    scale = np.array([width, height, width, height], np.float32)
    images = [[{**dict(zip(runner.CORNERS, np.round(box * scale, 1).tolist())), "score": round(float(score), 4),
                "class": spec.class_names[int(c)]} for box, score, c in zip(*boxes)] for boxes in found]
    return {"classes": spec.class_names, "width": width, "height": height, "score_threshold": threshold,
            "boxes": images[0] if len(images) == 1 else images}


# --- images out ---------------------------------------------------------------------------------------------


@predictor("generation")
def generate_images(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """`samples` images from noise fixed by `seed`, tiled into one PNG grid (base64)."""
    spec = model.preprocessing
    count = option(body, "samples", int, 16, 1, MAX_GENERATED_IMAGES)
    seed = option(body, "seed", int, 0, 0, 2**31 - 1)
    grid, rows, columns = runner.image_grid(infer(runner.sample_noise(count, spec.shape, seed).astype(spec.dtype)))
    return {"samples": count, "seed": seed, "grid": [rows, columns], "image_png": png_base64(grid)}


@predictor("reconstruction")
def reconstruct(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """The autoencoder's reconstruction of each input (a PNG grid, base64) and its MSE against the input."""
    spec = model.preprocessing
    inputs = spec.normalize(raw_inputs(model, body, limits)[0])
    outputs = infer(inputs).reshape(inputs.shape)
    mse = np.mean(np.square(outputs - inputs).reshape(len(inputs), -1), axis=1)
    to_pixels = spec.spec["output"]
    unit = np.clip((outputs - to_pixels["offset"]) / to_pixels["scale"] / to_pixels["pixel_max"], 0.0, 1.0)
    grid, rows, columns = runner.image_grid(unit * 2.0 - 1.0)
    return {"grid": [rows, columns], "image_png": png_base64(grid), "mse": [float(v) for v in mse]}


# --- numbers in -------------------------------------------------------------------------------------------


@predictor("forecasting")
def forecast(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """The next values after the last `window` of `{"inputs": [values...]}`, in the series' unit."""
    spec = model.preprocessing
    window = spec.shape[0]
    values = body.json.get("inputs")
    if not isinstance(values, list) or len(values) < window:
        raise BadRequest(f"inputs: expected a list of at least {window} values (the model reads the last {window})")
    series = array(Body({"inputs": values[-window:]}), (window,), limits)[0]
    x = ((series - spec.mean) / spec.std).reshape(1, *spec.shape).astype(spec.dtype)
    predicted = infer(x).reshape(-1) * spec.std + spec.mean
    return {"window": window, "forecast": [float(v) for v in predicted], "unit": spec.spec.get("unit", "")}


@predictor("regression")
def regress(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """A value for each row of `{"rows": [{column: value}, ...]}`, in the target's unit."""
    spec = model.preprocessing
    values = runner.regression_values(spec, infer(model_inputs(model, body, limits)))
    return {"target": str(spec.spec.get("target", "value")), "predictions": [{"value": float(v)} for v in values]}


# --- text in, text out: a model step at a time --------------------------------------------------------------


@predictor("language-modelling")
def generate_text(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """`text` (the prompt) and `max_new_tokens` sampled tokens after it (temperature, top_k, top_p, seed)."""
    spec = model.preprocessing
    prompts = texts(body, limits)
    if len(prompts) != 1:
        raise BadRequest("language models continue one prompt per request")
    length = option(body, "max_new_tokens", int, 100, 0, limits.max_new_tokens)
    temperature = option(body, "temperature", float, 1.0, 0.0, 10.0)
    top_k = option(body, "top_k", int, None, 0, len(spec.encoder.vocabulary))
    top_p = option(body, "top_p", float, None, 1e-6, 1.0)
    seed = option(body, "seed", int, 0, 0, 2**31 - 1)
    text = runner.generate_text(model.logits, spec.encoder, int(spec.spec["state_size"]), prompts[0], length,
                                temperature, top_k, seed, top_p, spec.spec.get("context_length"))
    return {"prompt": prompts[0], "generated_text": text}


@predictor("translation")
def translate(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """Each text translated greedily, in order."""
    spec = model.preprocessing
    sentences = texts(body, limits)
    target = runner.TextEncoder(spec.spec["input"]["target_tokenizer"])
    settings = [int(spec.spec[key]) for key in ("cache_size", "start_id", "end_id")]
    return {"translations": runner.translate_text(model.logits, spec.encoder, target, sentences, *settings)}


@predictor("masked-language-modelling")
def fill_mask(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """Each text's [MASK]s filled by the most probable word, with each mask's top-k candidates."""
    spec = model.preprocessing
    mask = spec.spec["input"].get("mask_token", "[MASK]")
    k = option(body, "top_k", int, 5, 1, 50)
    results = []
    for text in texts(body, limits):
        ids, positions = runner.mask_encode(spec.encoder, text, mask)
        masks = runner.fill_masks(infer(ids[np.newaxis])[0][positions], spec.encoder, mask, k)
        filled = text
        for guesses in masks:
            filled = filled.replace(mask, guesses[0]["token"], 1)
        results.append({"text": text, "filled": filled, "masks": masks})
    return {"results": results}


@predictor("word-embedding")
def neighbours(model: ServedModel, body: Body, infer: Infer, limits: Limits) -> dict[str, Any]:
    """Each word's `top_k` nearest words by cosine (the vectors are read from the model once)."""
    encoder = model.preprocessing.encoder
    k = option(body, "top_k", int, 10, 1, 100)
    vectors = model.memo("word_vectors", runner.word_vectors)
    found = {}
    for word in texts(body, limits, "word"):
        ids = encoder.encode_stream(word)
        if len(ids) != 1 or ids[0] == runner.OOV_ID:
            raise BadRequest(f"{word!r} is not one word of the vocabulary ({len(encoder.vocabulary):,} words)")
        found[word] = runner.nearest_words(vectors, encoder.vocabulary, vectors[ids[0]], k,
                                           {int(ids[0])})
    return {"neighbours": found}
