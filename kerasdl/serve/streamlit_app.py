"""The Streamlit app (`kerasdl app MODEL_DIR`): pick a served model, give it an input, see its answer drawn.

The repository and predictors of `kerasdl serve`, called in-process rather than over HTTP: the models load once
per process (`st.cache_resource`), every input passes the server's own checks (a refusal is one `st.error`
line, never a traceback), and each task's answer is drawn: a label with a bar chart of every class's score, a
mask or boxes over the image, generated images or text, a translation, filled masks, neighbours, a forecast.
The model folder is the script's argument (`streamlit run streamlit_app.py -- DIR`) or $KERASDL_APP_MODELS.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from kerasdl.errors import KerasdlError
from kerasdl.serve.inputs import BadRequest, Body, Limits
from kerasdl.serve.predictors import MAX_GENERATED_IMAGES, predict
from kerasdl.serve.repository import ModelRepository, Servable

MODELS_ENV = "KERASDL_APP_MODELS"
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]
LIMITS = Limits()
TEXT_PROMPTS = {
    "classification": "Text to classify",
    "language-modelling": "Prompt to continue",
    "translation": "Sentence to translate",
    "masked-language-modelling": "Text with [MASK] where a word is missing",
    "word-embedding": "Word (or several, one per line)",
}


def model_dir() -> str | None:
    """The script's argument when streamlit runs this file, else $KERASDL_APP_MODELS (what tests set)."""
    if len(sys.argv) > 1 and Path(sys.argv[0]).resolve() == Path(__file__).resolve():
        return sys.argv[1]
    return os.environ.get(MODELS_ENV)


@st.cache_resource(show_spinner="Loading the models...")
def load_repository(path: str) -> ModelRepository:
    """Every model under `path`, loaded once per process and shared by every browser session."""
    return ModelRepository.load(path)


def choose(repository: ModelRepository) -> Servable:
    """A selectbox of every version of every model, the newest version of each first."""
    servables = {f"{s.name}/{s.version}": s for s in sorted(repository.servables(), key=lambda s: (s.name, -s.version))}

    def label(key: str) -> str:
        servable = servables[key]
        task = servable.model.task if servable.model else "not loaded"
        return f"{servable.name} · version {servable.version} · {task}"

    return servables[st.selectbox("Model", list(servables), format_func=label)]


def export_figures(servable: Servable) -> None:
    """What `GET /v1/models/NAME/versions/V` says: task, input, format, size, parity, latency."""
    with st.expander("Export figures (format, size, parity with Keras, latency)"):
        st.json(servable.describe())


# --- inputs: a request body, or None until the user has given one -------------------------------------------


def image_input(servable: Servable) -> Body | None:
    upload = st.file_uploader("Image", type=IMAGE_TYPES)
    return Body({}, upload.getvalue()) if upload is not None else None


def text_input(servable: Servable) -> Body | None:
    task = servable.model.task
    text = st.text_area(TEXT_PROMPTS.get(task, "Text"))
    options = language_model_options() if task == "language-modelling" else {}
    if not st.button("Predict"):
        return None
    if task == "word-embedding":
        return Body({"words": [line.strip() for line in text.splitlines() if line.strip()] or [text]})
    return Body({"text": text, **options})


def language_model_options() -> dict[str, Any]:
    columns = st.columns(3)
    return {"max_new_tokens": columns[0].number_input("New tokens", 0, LIMITS.max_new_tokens, 100),
            "temperature": columns[1].slider("Temperature", 0.0, 2.0, 1.0, 0.05),
            "seed": columns[2].number_input("Seed", 0, 2**31 - 1, 0)}


def noise_input(servable: Servable) -> Body | None:
    columns = st.columns(2)
    samples = columns[0].number_input("Samples", 1, MAX_GENERATED_IMAGES, 16)
    seed = columns[1].number_input("Seed", 0, 2**31 - 1, 0)
    return Body({"samples": samples, "seed": seed}) if st.button("Generate") else None


def series_input(servable: Servable) -> Body | None:
    window = servable.model.preprocessing.shape[0]
    text = st.text_area(f"The last {window} (or more) values, separated by commas")
    if not st.button("Forecast"):
        return None
    try:
        values = json.loads(text if text.strip().startswith("[") else f"[{text}]")
    except (ValueError, RecursionError):
        raise BadRequest("values: expected numbers separated by commas, e.g. 12.5, 13.1, 11.8") from None
    return Body({"inputs": values})


def table_input(servable: Servable) -> Body | None:
    """Rows of a table typed as CSV (a header line naming the columns, then one row a line)."""
    text = st.text_area("Rows as CSV: a header line with the column names, then one row a line")
    if not st.button("Predict"):
        return None
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise BadRequest("rows: expected a header line and at least one row")
    return Body({"rows": rows})


INPUTS: dict[str, Callable[[Servable], Body | None]] = {
    "image": image_input, "text": text_input, "noise": noise_input, "series": series_input, "tabular": table_input,
}


# --- answers, drawn -------------------------------------------------------------------------------------------


def show_classification(result: dict[str, Any], body: Body) -> None:
    """The best label and its score, then every class's probability as a bar chart."""
    best = result["predictions"][0]
    if body.image is not None:
        st.image(body.image, caption="input", width=112)
    st.metric("Prediction", best["label"])
    st.caption(f"score {best['score']:.1%}")
    st.bar_chart(pd.DataFrame({"probability": best["scores"]}, index=result["classes"]))


def show_segmentation(result: dict[str, Any], body: Body) -> None:
    st.image([body.image, png_bytes(result["mask_png"])], caption=["input", "predicted mask"], width=320)
    st.bar_chart(pd.DataFrame({"share of pixels": result["class_fractions"]}))


def show_detection(result: dict[str, Any], body: Body) -> None:
    boxes = result["boxes"]
    st.image(with_boxes(body.image, boxes), caption=f"{len(boxes)} boxes above {result['score_threshold']:.2f}")
    if boxes:
        st.dataframe(pd.DataFrame(boxes))


def with_boxes(image: bytes, boxes: list[dict[str, Any]]):
    """The image (RGB) with each box outlined and labelled with its class and score."""
    from PIL import Image, ImageDraw

    picture = Image.open(io.BytesIO(image)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for box in boxes:
        corners = [box["x_min"], box["y_min"], box["x_max"], box["y_max"]]
        draw.rectangle(corners, outline=(255, 64, 0), width=max(1, min(picture.size) // 150))
        draw.text((corners[0] + 2, corners[1] + 1), f"{box['class']} {box['score']:.2f}", fill=(255, 64, 0))
    return picture


def show_generation(result: dict[str, Any], body: Body) -> None:
    st.image(png_bytes(result["image_png"]), caption=f"{result['samples']} samples, seed {result['seed']}")


def show_reconstruction(result: dict[str, Any], body: Body) -> None:
    st.image([body.image, png_bytes(result["image_png"])], caption=["input", "reconstruction"], width=320)
    st.caption(f"mean squared error {result['mse'][0]:.4f}")


def show_generated_text(result: dict[str, Any], body: Body) -> None:
    st.text(result["generated_text"])


def show_translation(result: dict[str, Any], body: Body) -> None:
    for translation in result["translations"]:
        st.success(translation)


def show_filled_masks(result: dict[str, Any], body: Body) -> None:
    for found in result["results"]:
        st.success(found["filled"])
        for position, guesses in enumerate(found["masks"], 1):
            st.bar_chart(pd.DataFrame({f"mask {position}": {g["token"]: g["probability"] for g in guesses}}))


def show_neighbours(result: dict[str, Any], body: Body) -> None:
    for word, near in result["neighbours"].items():
        st.subheader(word)
        st.dataframe(pd.DataFrame(near))


def show_forecast(result: dict[str, Any], body: Body) -> None:
    series = [float(v) for v in body.json["inputs"][-result["window"]:]]
    frame = pd.DataFrame({"input": series + [None] * len(result["forecast"]),
                          "forecast": [None] * (len(series) - 1) + series[-1:] + result["forecast"]})
    st.line_chart(frame, y_label=result["unit"] or None)
    st.caption("forecast: " + ", ".join(f"{v:.2f}" for v in result["forecast"]) + f" {result['unit']}".rstrip())


SHOW: dict[str, Callable[[dict[str, Any], Body], None]] = {
    "classification": show_classification, "segmentation": show_segmentation, "detection": show_detection,
    "generation": show_generation, "reconstruction": show_reconstruction,
    "language-modelling": show_generated_text, "translation": show_translation,
    "masked-language-modelling": show_filled_masks, "word-embedding": show_neighbours, "forecasting": show_forecast,
}


def png_bytes(encoded: str) -> bytes:
    return base64.b64decode(encoded)


def answer(servable: Servable) -> None:
    """The input widgets of the model's kind; once given, the predictor's answer drawn, or its refusal."""
    model = servable.model
    try:
        body = INPUTS[model.preprocessing.kind](servable)
        if body is None:
            return
        result = predict(model, body, model.logits, LIMITS)
    except BadRequest as err:
        st.error(str(err))
        return
    SHOW.get(model.task, lambda found, _: st.json(found))(result, body)


def main() -> None:
    st.set_page_config(page_title="kerasdl models")
    st.title("kerasdl: served models")
    path = model_dir()
    if path is None:
        st.error(f"no model folder: run `kerasdl app MODEL_DIR` (or set {MODELS_ENV})")
        return
    try:
        repository = load_repository(path)
    except KerasdlError as err:
        st.error(str(err))
        return
    servable = choose(repository)
    if servable.model is None:
        st.error(f"{servable.name} version {servable.version} failed to load: {servable.error}")
        return
    export_figures(servable)
    answer(servable)


if __name__ == "__main__":
    main()
