"""`kerasdl.pipeline(task, model)`: the curriculum's Hugging Face `pipeline()` call, for our own models.

    clf = kerasdl.pipeline("sentiment-analysis", "runs/transformer-classifier-sst2-fit")
    clf("I love this movie")          # [{'label': 'positive', 'score': 0.97}]

`model` is a run directory (the Keras model; imports TensorFlow) or an exported artifact, a .tflite/.onnx
file or its folder (the TF-free edge runner: NumPy and LiteRT or onnxruntime only). Both give the same
answers: the Keras side tokenizes, samples and decodes with the runner's own functions. A string in gives
that string's result, a list gives a list of them, as plain Python, shaped as Hugging Face's pipelines give
them (sentiment: label and score; generation: generated_text; translation: translation_text; fill-mask:
the top candidates with score, token_str and sequence).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from kerasdl.errors import KerasdlError

# pipeline name -> the kerasdl task whose models serve it
TASKS = {
    "sentiment-analysis": "classification",
    "text-generation": "language-modelling",
    "translation": "translation",
    "fill-mask": "masked-language-modelling",
}
FLAT = ("sentiment-analysis", "translation")  # for a list, Hugging Face gives these one dict per text, not a list
MASK = "[MASK]"
GENERATION_DEFAULTS = {"max_new_tokens": 100, "temperature": 1.0, "top_k": None, "top_p": None, "seed": 0}


class Pipeline:
    """One model serving one pipeline task; call it on a string or a list of strings."""

    def __init__(self, task: str, backend: _Backend, defaults: dict[str, Any]):
        self.task = task
        self.backend = backend
        self.defaults = defaults

    def __call__(self, inputs: str | list[str], **options: Any) -> Any:
        if isinstance(inputs, str):
            return self._run([inputs], {**self.defaults, **options})[0]
        if not isinstance(inputs, (list, tuple)) or not all(isinstance(text, str) for text in inputs):
            raise KerasdlError(f"a pipeline takes a string or a list of strings, not {type(inputs).__name__}")
        results = self._run(list(inputs), {**self.defaults, **options}) if inputs else []
        return [result[0] for result in results] if self.task in FLAT else results

    def _run(self, texts: list[str], options: dict[str, Any]) -> list[Any]:
        """Each text's result as a single call gives it."""
        if self.task == "sentiment-analysis":
            return [[_best(row, self.backend.class_names)] for row in self.backend.classify(texts)]
        if self.task == "text-generation":
            settings = {**GENERATION_DEFAULTS, **options}
            return [[{"generated_text": self.backend.generate(text, settings)}] for text in texts]
        if self.task == "translation":
            return [[{"translation_text": text}] for text in self.backend.translate(texts, options.get("beam_size", 1))]
        return [self._fill(text, options.get("top_k", 5)) for text in texts]

    def _fill(self, text: str, top_k: int) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Hugging Face's fill-mask shape: one mask gives its candidates, several give a list per mask."""
        pieces = text.split(MASK)
        candidates = [
            [{"score": guess["probability"], "token_str": guess["token"],
              "sequence": _filled(pieces, number, guess["token"])} for guess in guesses]
            for number, guesses in enumerate(self.backend.fill(text, top_k))
        ]
        return candidates[0] if len(candidates) == 1 else candidates


def _filled(pieces: list[str], number: int, token: str) -> str:
    """The text (split at its masks) with mask `number` filled by `token` and the others left as they are."""
    return "".join(piece + (token if i == number else MASK) for i, piece in enumerate(pieces[:-1])) + pieces[-1]


def _best(probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    index = int(np.argmax(probabilities))
    return {"label": class_names[index], "score": float(probabilities[index])}


def pipeline(task: str, model: str | Path, **defaults: Any) -> Pipeline:
    """A callable that runs `model` (a run directory or an exported artifact) for `task`: one of TASKS.

    `defaults` are the call's options unless a call says otherwise: text-generation takes max_new_tokens,
    temperature, top_k, top_p and seed; translation beam_size (run directories; artifacts decode greedily);
    fill-mask top_k.
    """
    if task not in TASKS:
        raise KerasdlError(f"unknown pipeline task {task!r}; known: {', '.join(TASKS)}")
    path = Path(model)
    backend = _EdgeBackend(path) if _is_artifact(path) else _KerasBackend(path)
    if backend.task != TASKS[task]:
        raise KerasdlError(f"{path} holds a {backend.task} model; {task!r} needs a {TASKS[task]} one")
    return Pipeline(task, backend, defaults)


def _is_artifact(path: Path) -> bool:
    """A .tflite/.onnx file, or a folder holding one and its preprocessing.json (an export folder)."""
    return path.suffix in (".tflite", ".onnx") or (path.is_dir() and bool(_artifact_in(path)))


def _artifact_in(folder: Path) -> Path | None:
    found = sorted([*folder.glob("*.tflite"), *folder.glob("*.onnx")])
    return found[0] if found else None


class _Backend:
    """What each pipeline task asks of a model, the same for a Keras run and an edge artifact."""

    task: str
    class_names: tuple[str, ...]

    def classify(self, texts: list[str]) -> np.ndarray: ...
    def generate(self, prompt: str, settings: dict[str, Any]) -> str: ...
    def translate(self, texts: list[str], beam_size: int) -> list[str]: ...
    def fill(self, text: str, top_k: int) -> list[list[dict[str, Any]]]: ...


class _EdgeBackend(_Backend):
    """An exported artifact through the TF-free runner."""

    def __init__(self, path: Path):
        from kerasdl.edge.runner import EdgeModel, RunnerError

        artifact = _artifact_in(path) if path.is_dir() else path
        try:
            self.model = EdgeModel(artifact)
        except RunnerError as err:
            raise KerasdlError(str(err)) from err
        self.task = self.model.task
        self.class_names = tuple(self.model.preprocessing.class_names)

    def classify(self, texts: list[str]) -> np.ndarray:
        from kerasdl.edge.runner import softmax

        return softmax(self.model.logits(self.model.preprocessing.encoder.encode(texts)))

    def generate(self, prompt: str, settings: dict[str, Any]) -> str:
        from kerasdl.edge.runner import generate_text

        spec = self.model.preprocessing
        return _runner_call(generate_text, self.model.logits, spec.encoder, int(spec.spec["state_size"]), prompt,
                            settings["max_new_tokens"], settings["temperature"], settings["top_k"], settings["seed"],
                            settings["top_p"], spec.spec.get("context_length"))

    def translate(self, texts: list[str], beam_size: int) -> list[str]:
        from kerasdl.edge.runner import TextEncoder, translate_text

        if beam_size != 1:
            raise KerasdlError("an exported translator decodes greedily; use beam_size=1 or a run directory")
        spec = self.model.preprocessing.spec
        target = TextEncoder(spec["input"]["target_tokenizer"])
        return _runner_call(translate_text, self.model.logits, self.model.preprocessing.encoder, target, texts,
                            int(spec["cache_size"]), int(spec["start_id"]), int(spec["end_id"]))

    def fill(self, text: str, top_k: int) -> list[list[dict[str, Any]]]:
        from kerasdl.edge.runner import fill_masks, mask_encode

        encoder = self.model.preprocessing.encoder
        ids, positions = _runner_call(mask_encode, encoder, text, MASK)
        return fill_masks(self.model.logits(ids[np.newaxis])[0][positions], encoder, MASK, top_k)


class _KerasBackend(_Backend):
    """A run directory's Keras model, with the vocabulary it trained with."""

    def __init__(self, path: Path):
        from kerasdl.commands import check_run_dir

        check_run_dir(str(path))
        from kerasdl.models.loading import load_model_file
        from kerasdl.registry import model_spec
        from kerasdl.training.run_dir import RunDirectory

        run = RunDirectory(path)
        self.config = run.read_config()
        self.task = model_spec(self.config["model"]).task
        self.state = run.read_data_state() or {}
        if not self.state:  # a text model's run keeps its vocabularies there
            raise KerasdlError(f"{path} is not a text model's run (no saved vocabulary in data_state.json)")
        self.class_names = tuple(self.config["dataset"]["class_names"])
        self.model = load_model_file(run.require_model())

    def classify(self, texts: list[str]) -> np.ndarray:
        from kerasdl.edge.runner import TextEncoder, softmax
        from kerasdl.tasks import predict

        return softmax(predict(self.model, TextEncoder(self.state["tokenizer"]).encode(texts)))

    def generate(self, prompt: str, settings: dict[str, Any]) -> str:
        from kerasdl.tasks.language_modelling import generate

        return _runner_call(generate, self.model, self.state["tokenizer"], prompt, settings["max_new_tokens"],
                            settings["temperature"], settings["top_k"], settings["seed"], settings["top_p"])

    def translate(self, texts: list[str], beam_size: int) -> list[str]:
        from kerasdl.data.translation import TranslationPairs
        from kerasdl.tasks.translation import translate

        pairs = TranslationPairs.from_state(self.config["data"], self.state)
        return translate(self.model, pairs, texts, beam_size)

    def fill(self, text: str, top_k: int) -> list[list[dict[str, Any]]]:
        from kerasdl.tasks.masked_language_modelling import fill_mask

        return _runner_call(fill_mask, self.model, self.state["tokenizer"], text, top_k)


def _runner_call(function: Callable[..., Any], *args: Any) -> Any:
    """The runner's functions say what is wrong with an input as RunnerError; a pipeline says KerasdlError."""
    from kerasdl.edge.runner import RunnerError

    try:
        return function(*args)
    except RunnerError as err:
        raise KerasdlError(str(err)) from err
