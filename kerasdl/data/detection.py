"""Images with bounding boxes: PASCAL VOC annotations, the raccoon set, and a bundle of CenterNet targets.

A box is [x_min, y_min, x_max, y_max] normalized to [0, 1] by its image's width and height, so it does not
move when the image is resized to the model's square input; `labels(split)` gives each image's boxes with
their class index as a fifth column. Training batches pair each image with the target a CenterNet head
learns, built in tf.data at the head's output stride: a Gaussian peak per object in its class's heatmap
channel, and at each object's centre cell its size and the centre's offset inside that cell.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeXml
from defusedxml import DefusedXmlException
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.errors import DataError, KerasdlError

OUTPUT_STRIDE = 4  # input pixels per cell of a detection head's output grid
TARGET_CHANNELS = 5  # after the class heatmaps: width, height, x offset, y offset, centre mask
# A peak's spread is this share of the object's side / 6 (TTFNet's elliptical Gaussian, alpha 0.54).
GAUSSIAN_ALPHA = 0.54
SCALE_JITTER = 0.3  # training crops span (1 - jitter) to (1 + jitter) of the image: zoom in and out
MIN_VISIBLE = 0.3  # a box cut by a training crop is kept while this share of it is still in view
RACCOON_IMAGE_SIZE = 64  # side of the square inputs: raccoons fill much of each photo; CPU minutes
RACCOON_CLASSES = ("raccoon",)


@dataclass(frozen=True)
class Annotation:
    """One image file and its boxes: (n, 5) float32 rows of normalized x_min, y_min, x_max, y_max, class."""

    image: str
    width: int
    height: int
    boxes: np.ndarray


def read_voc(path: Path, images_dir: Path, class_names: tuple[str, ...]) -> Annotation:
    """One PASCAL VOC XML file, checked against its image; a DataError naming the file for anything wrong."""
    try:
        root = SafeXml.parse(path).getroot()  # defusedxml: entities (XXE, billion laughs) are refused
        image = images_dir / _file_name(_text(root, "filename"))
        width, height = int(_text(root, "size/width")), int(_text(root, "size/height"))
        boxes = [
            [*(float(_text(obj, f"bndbox/{side}")) for side in ("xmin", "ymin", "xmax", "ymax")),
             _class_index(_text(obj, "name"), class_names)]
            for obj in root.iter("object")
        ]
    except DefusedXmlException as err:
        raise DataError(f"{path}: refused: it declares XML entities ({type(err).__name__}), which VOC never needs") from None
    except SafeXml.ParseError as err:
        raise DataError(f"{path}: not valid VOC XML ({err})") from None
    except OSError as err:
        raise DataError(f"{path}: the image's annotation cannot be read ({err.strerror})") from None
    except ValueError as err:
        raise DataError(f"{path}: {err}") from None
    _check_image(path, image, width, height)
    for x_min, y_min, x_max, y_max, _ in boxes:
        if not (0 <= x_min < x_max <= width and 0 <= y_min < y_max <= height):
            corners = f"({x_min:g}, {y_min:g}, {x_max:g}, {y_max:g})"
            raise DataError(f"{path}: box {corners} is empty or lies outside its {width}x{height} image")
    scale = np.array([width, height, width, height, 1], np.float32)
    return Annotation(str(image), width, height, np.asarray(boxes, np.float32).reshape(-1, 5) / scale)


def _text(element: Element, tag: str) -> str:
    found = element.findtext(tag)
    if found is None or not found.strip():
        raise ValueError(f"lacks <{tag}>")
    return found.strip()


def _file_name(name: str) -> str:
    """A bare file name: an annotation never points outside its images folder."""
    if Path(name).name != name or name in (".", ".."):
        raise ValueError(f"<filename> {name[:60]!r} is not a file name in the images folder")
    return name


def _class_index(name: str, class_names: tuple[str, ...]) -> int:
    if name not in class_names:
        raise ValueError(f"class {name!r} is not one of {', '.join(class_names)}")
    return class_names.index(name)


def _check_image(annotation: Path, image: Path, width: int, height: int) -> None:
    """The image must exist and be as large as the annotation says, or every box would be misplaced."""
    from kerasdl.data.images import check_image

    if not image.is_file():
        raise DataError(f"{annotation}: its image {image} is missing")
    try:
        size = check_image(image)
    except DataError as err:
        raise DataError(f"{annotation}: its image {err}") from None
    if size != (width, height):
        raise DataError(f"{annotation}: says {width}x{height} but its image {image} is {size[0]}x{size[1]}")


def read_split(folder: Path, labels_csv: str, class_names: tuple[str, ...]) -> list[Annotation]:
    """The images a split CSV names (in order of first mention), each read from annotations/<stem>.xml."""
    csv_path = folder / labels_csv
    if not csv_path.is_file():
        raise DataError(f"{csv_path} is missing (the split's file list: filename,width,height,class,...)")
    from kerasdl.data.text import csv_rows

    rows = [row for row in csv_rows(csv_path) if row]
    if not rows or "filename" not in rows[0]:
        raise DataError(f"{csv_path} has no header naming a filename column (filename,width,height,class,...)")
    column = rows[0].index("filename")
    try:
        names = list(dict.fromkeys(row[column] for row in rows[1:]))
    except IndexError:
        raise DataError(f"{csv_path}: a row has no {column + 1}th field (filename)") from None
    annotations = folder / "annotations"
    return [read_voc(annotations / f"{Path(name).stem}.xml", folder / "images", class_names) for name in names]


@dataclass(frozen=True)
class BoxFiles:
    """What a box source returns: annotated images per split, split into a bundle by `load`."""

    train: list[Annotation]
    test: list[Annotation]
    class_names: tuple[str, ...]
    image_size: int

    def bundle(self, name: str, *, validation_fraction: float, seed: int, image_size: int | None) -> BoxBundle:
        """Hold out a seeded random share of the training images for validation."""
        order = np.random.default_rng(seed).permutation(len(self.train))
        held_out = max(1, round(validation_fraction * len(self.train)))
        annotations = {
            "train": [self.train[i] for i in np.sort(order[held_out:])],
            "validation": [self.train[i] for i in np.sort(order[:held_out])],
            "test": list(self.test),
        }
        size = image_size or self.image_size
        if size % (8 * OUTPUT_STRIDE):
            raise KerasdlError(f"detection needs an image size that is a multiple of {8 * OUTPUT_STRIDE}, got {size}")
        info = DatasetInfo(
            name=name,
            input_shape=(size, size, 3),
            num_classes=len(self.class_names),
            class_names=self.class_names,
            split_sizes={split: len(annotations[split]) for split in SPLITS},
            scale=2.0 / 255.0,
            offset=-1.0,
            augmentation="boxes",
        )
        return BoxBundle(info, annotations)


@register_dataset(
    "raccoon",
    description="Raccoon detection (Dat Tran 2017): 200 photos with VOC boxes, train 160 / test 40 images",
    class_names=RACCOON_CLASSES,
    max_value=255.0,
    augmentation="boxes",
    image_size=RACCOON_IMAGE_SIZE,
)
def load_raccoon(data_dir: Path) -> BoxFiles:
    folder = data_dir / "raccoon"
    if not folder.is_dir():
        raise DataError(
            f"the raccoon set is not in {folder}: put datitran/raccoon_dataset's images/, annotations/, "
            "train_labels.csv and test_labels.csv there (or set KERASDL_DATA to their parent folder)"
        )
    return BoxFiles(
        read_split(folder, "train_labels.csv", RACCOON_CLASSES),
        read_split(folder, "test_labels.csv", RACCOON_CLASSES),
        RACCOON_CLASSES,
        RACCOON_IMAGE_SIZE,
    )


@dataclass(frozen=True)
class BoxBundle(DataBundle):
    """Annotated images per split; `dataset` yields (image scaled to [-1, 1], CenterNet target) batches."""

    info: DatasetInfo
    annotations: dict[str, list[Annotation]]

    def labels(self, split: str) -> list[np.ndarray]:
        """Each image's boxes, (n, 5): normalized x_min, y_min, x_max, y_max and the class index."""
        return [annotation.boxes for annotation in self.annotations[self._checked(split)]]

    @property
    def grid(self) -> int:
        """Side of the output grid the targets are built on."""
        return self.info.input_shape[0] // OUTPUT_STRIDE

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        import tensorflow as tf

        from kerasdl.data.images import decode_and_resize

        annotations = self.annotations[self._checked(split)]
        size, scale, offset = self.info.input_shape[0], self.info.scale, self.info.offset
        grid, num_classes = self.grid, self.info.num_classes

        def decoded(path, boxes):
            return decode_and_resize(path, size), boxes

        def augmented(example, seed):
            return augment_boxes(*example, seed)

        def with_target(image, boxes):
            return tf.cast(image, tf.float32) * scale + offset, centernet_target(boxes, grid, num_classes)

        boxes = tf.RaggedTensor.from_row_lengths(
            np.concatenate([a.boxes for a in annotations]), [len(a.boxes) for a in annotations]
        )
        ds = tf.data.Dataset.from_tensor_slices(([a.image for a in annotations], boxes))
        ds = ds.map(decoded, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle_seed is not None:
            ds = ds.shuffle(len(annotations), seed=shuffle_seed, reshuffle_each_iteration=True)
        if augment:
            seeds = tf.data.Dataset.random(seed=shuffle_seed or 0, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip(ds, seeds).map(augmented, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.map(with_target, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def augment_boxes(image, boxes, seed):
    """tf.data map: a random horizontal flip and a random square crop of (1 +- SCALE_JITTER) of the image
    (beyond its edges: grey padding, i.e. zoom out), resized back, with the boxes moved alike."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    size = tf.shape(image)[0]
    flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
    image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
    mirrored = tf.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3], boxes[:, 4]], 1)
    boxes = tf.cond(flip, lambda: mirrored, lambda: boxes)
    side = tf.random.stateless_uniform([], seeds[1], 1 - SCALE_JITTER, 1 + SCALE_JITTER)
    low, high = tf.minimum(0.0, 1 - side), tf.maximum(0.0, 1 - side)
    x_min, y_min = tf.unstack(tf.random.stateless_uniform([2], seeds[2], low, high))
    window = tf.stack([y_min, x_min, y_min + side, x_min + side])
    image = tf.image.crop_and_resize(
        tf.cast(image[None], tf.float32), window[None], [0], [size, size], extrapolation_value=127.5
    )[0]
    corner = tf.stack([x_min, y_min, x_min, y_min])
    moved = (boxes[:, :4] - corner) / side
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    visible = _area(clipped) >= MIN_VISIBLE * _area(moved)
    boxes = tf.boolean_mask(tf.concat([clipped, boxes[:, 4:]], 1), visible & (_area(clipped) > 0))
    return tf.cast(tf.round(image), tf.uint8), boxes


def _area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def centernet_target(boxes, grid: int, num_classes: int):
    """One image's boxes (n, 5) -> its (grid, grid, classes + 5) target: per class a heatmap (Gaussian peaks
    of 1 at object centres), then width and height (normalized), the centre's offset inside its cell, and a
    mask that is 1 at centre cells (where size and offset are learned)."""
    import tensorflow as tf

    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 5])
    x_min, y_min, x_max, y_max, classes = tf.unstack(boxes, axis=1)
    width, height = x_max - x_min, y_max - y_min
    centre_x, centre_y = (x_min + x_max) / 2 * grid, (y_min + y_max) / 2 * grid
    cell_x = tf.clip_by_value(tf.floor(centre_x), 0, grid - 1)
    cell_y = tf.clip_by_value(tf.floor(centre_y), 0, grid - 1)
    sigma_x = tf.maximum(GAUSSIAN_ALPHA * width * grid / 6, 0.5)[:, None, None]
    sigma_y = tf.maximum(GAUSSIAN_ALPHA * height * grid / 6, 0.5)[:, None, None]
    cells = tf.range(grid, dtype=tf.float32)
    peaks = tf.exp(
        -((cells[None, None, :] - cell_x[:, None, None]) ** 2) / (2 * sigma_x**2)
        - (cells[None, :, None] - cell_y[:, None, None]) ** 2 / (2 * sigma_y**2)
    )  # (n, grid, grid)
    per_class = peaks[..., None] * tf.one_hot(tf.cast(classes, tf.int32), num_classes)[:, None, None, :]
    heatmap = tf.reduce_max(tf.concat([tf.zeros([1, grid, grid, num_classes]), per_class], 0), axis=0)
    at_centres = tf.stack([width, height, centre_x - cell_x, centre_y - cell_y, tf.ones_like(width)], 1)
    centres = tf.cast(tf.stack([cell_y, cell_x], 1), tf.int32)
    regression = tf.scatter_nd(centres, at_centres, [grid, grid, TARGET_CHANNELS])
    # Two centres in one cell add up: keep their mean instead (the mask channel counts them).
    count = regression[..., 4:]
    regression = tf.concat([regression[..., :4] / tf.maximum(count, 1.0), tf.minimum(count, 1.0)], -1)
    return tf.concat([heatmap, regression], -1)
