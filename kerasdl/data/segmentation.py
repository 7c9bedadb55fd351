"""Images with a class per pixel: the ISBI 2012 EM membranes and Oxford-IIIT pets, as a `SegmentationBundle`.

Two ways to fit an image to the model's fixed square input (`DatasetInfo.input_shape`, which export and the
edge runner use too). EM sections are kept at full resolution, where membranes are a few pixels wide, and
cut into tiles: training takes random crops of a tile's size (flipped and turned by multiples of 90 degrees,
image and mask alike, since a section has no up or left), validation and test the fixed grid of tiles that
covers each image. Pet photos of any size are resized whole (image bilinear, mask nearest) and flipped left
to right in training. Evaluating the grid of tiles is evaluating every pixel of the held-out images once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from kerasdl.data.base import DatasetInfo, register_dataset
from kerasdl.data.bundle import SPLITS, DataBundle
from kerasdl.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

# The augmentation of sets whose model sees full-resolution tiles; the task tells the edge runner to tile
# such images the same way (any other set is resized whole).
TILES = "crop-flip-rotate"
RESIZE = "flip"

EM_CLASSES = ("membrane", "cell")  # label pixels 0 (dark boundaries) and 255 (cell interior)
EM_TEST_IMAGES = 6  # the last 6 of the 30 labelled sections (24..29) are the test split
EM_TILE = 128  # default tile side: 16 tiles per 512x512 section, what a CPU trains in minutes
PET_CLASSES = ("pet", "background", "border")  # trimap pixels 1, 2, 3
PET_SIZE = 128

Pair = tuple[Path, Path]  # (image file, mask file)


@dataclass(frozen=True)
class MaskFiles:
    """What a segmentation source returns: (image, mask) file pairs per split; splits itself into a bundle."""

    train: list[Pair]
    test: list[Pair]
    class_names: tuple[str, ...]
    channels: int  # 1: grayscale, 3: RGB
    classes_of: Callable[[np.ndarray], np.ndarray]  # raw mask pixels -> class per pixel (ValueError if invalid)
    augmentation: str  # TILES or RESIZE
    default_size: int  # tile side (TILES) or resized side (RESIZE)

    def bundle(
        self, name: str, *, validation_fraction: float, seed: int, image_size: int | None
    ) -> SegmentationBundle:
        """Decode every pair, hold out a seeded `validation_fraction` of the training images (at least one)."""
        size = image_size or self.default_size
        train = self._decode(self.train, size)
        test = self._decode(self.test, size)
        held_out = max(1, math.ceil(validation_fraction * len(self.train)))
        if held_out >= len(self.train):
            raise DataError(f"{name}: {len(self.train)} training images are too few to hold out {held_out}")
        order = np.random.default_rng(seed).permutation(len(self.train))
        validation, kept = np.sort(order[:held_out]), np.sort(order[held_out:])
        images = {
            "train": (train[0][kept], train[1][kept]),
            "validation": (train[0][validation], train[1][validation]),
            "test": test,
        }
        info = DatasetInfo(
            name=name,
            input_shape=(size, size, self.channels),
            num_classes=len(self.class_names),
            class_names=self.class_names,
            split_sizes={split: len(images[split][0]) * tiles_per_image(images[split][0], size) for split in SPLITS},
            scale=2.0 / 255.0,
            offset=-1.0,
            augmentation=self.augmentation,
        )
        return SegmentationBundle(info, images)

    def _decode(self, pairs: list[Pair], size: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, H, W, C) and class masks (N, H, W), checked pair by pair."""
        from PIL import Image

        images, masks = [], []
        for image_path, mask_path in pairs:
            image, mask = _open(image_path), _open(mask_path)
            if image.size != mask.size:
                raise DataError(f"{mask_path} is {_size(mask)} but its image {image_path.name} is {_size(image)}")
            if len(mask.getbands()) != 1:
                raise DataError(f"{mask_path} has {len(mask.getbands())} channels; a mask has one (a class per pixel)")
            if self.augmentation == RESIZE:
                image, mask = image.resize((size, size), Image.BILINEAR), mask.resize((size, size), Image.NEAREST)
            elif image.size[0] % size or image.size[1] % size:
                raise DataError(f"{image_path} is {_size(image)}: image-size {size} must divide both sides")
            elif masks and mask.size != masks[0].shape[::-1]:
                raise DataError(f"{image_path} is {_size(image)}, unlike {pairs[0][0].name}: tiled images share a size")
            images.append(np.asarray(image.convert("L" if self.channels == 1 else "RGB"), np.uint8))
            try:
                masks.append(self.classes_of(np.asarray(mask)).astype(np.uint8))
            except ValueError as err:
                raise DataError(f"{mask_path}: {err}") from None
        return np.stack(images).reshape(len(images), *masks[0].shape, self.channels), np.stack(masks)


def _open(path: Path) -> Image.Image:
    from kerasdl.data.images import load_image, open_image

    image = open_image(path)
    load_image(path, image)
    return image


def _size(image: Image.Image) -> str:
    return f"{image.size[0]}x{image.size[1]}"


def tiles_per_image(images: np.ndarray, size: int) -> int:
    """How many size x size tiles the grid over each image (N, H, W, ...) has."""
    return (images.shape[1] // size) * (images.shape[2] // size)


def to_tiles(x: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W, ...) -> (N * H/size * W/size, size, size, ...): each image's tiles, row by row."""
    n, height, width, rest = x.shape[0], x.shape[1], x.shape[2], x.shape[3:]
    grid = x.reshape(n, height // size, size, width // size, size, *rest)
    return np.moveaxis(grid, 3, 2).reshape(-1, size, size, *rest)


@dataclass(frozen=True)
class SegmentationBundle(DataBundle):
    """Splits held as uint8 images and class masks; samples are the model's square tiles (see module doc)."""

    info: DatasetInfo
    images: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images N,H,W,C, masks N,H,W)

    @property
    def tile(self) -> int:
        return self.info.input_shape[0]

    def tiles(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """The split's fixed grid of uint8 tiles and their masks."""
        images, masks = self.images[self._checked(split)]
        return to_tiles(images, self.tile), to_tiles(masks, self.tile)

    def labels(self, split: str) -> np.ndarray:
        """The class of every pixel of every tile, (tiles, size, size) uint8, in `dataset(split)` order."""
        return self.tiles(split)[1]

    def batches(self, split: str, batch_size: int = 256) -> Iterator[np.ndarray]:
        x = self.tiles(split)[0]
        for start in range(0, len(x), batch_size):
            yield self._scaled(x[start : start + batch_size])

    def take(self, split: str, count: int, *, seed: int | None = None) -> np.ndarray:
        return self._scaled(self.tiles(split)[0][self.sample_indices(split, count, seed)])

    def _scaled(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) * self.info.scale + self.info.offset

    def dataset(self, split: str, batch_size: int, *, shuffle_seed: int | None = None, augment: bool = False):
        """Batches of (scaled tiles, int32 masks); training with `augment` draws fresh random tiles each epoch."""
        import tensorflow as tf

        if augment and split == "train":
            ds = self._random_tiles(shuffle_seed or 0)
        else:
            ds = tf.data.Dataset.from_tensor_slices(self.tiles(split))
            if shuffle_seed is not None:
                ds = ds.shuffle(len(ds), seed=shuffle_seed, reshuffle_each_iteration=True)
        scale, offset = self.info.scale, self.info.offset
        ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32) * scale + offset, tf.cast(y, tf.int32)))
        return ds.prefetch(tf.data.AUTOTUNE)

    def _random_tiles(self, seed: int):
        """As many random tiles per epoch as the grid has, each from a random image (drawn anew each epoch):
        a random crop, flips and a turn (TILES) or a left-right flip (RESIZE), the same for image and mask."""
        import tensorflow as tf

        images, masks = self.images["train"]
        channels, size, rotate = images.shape[-1], self.tile, self.info.augmentation == TILES
        stacked = tf.constant(np.concatenate([images, masks[..., None]], axis=-1))  # crop both in one op
        draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)  # a seed per tile

        def random_tile(draw):
            crop, which, left_right, up_down, turn = tf.unstack(tf.random.experimental.stateless_split(draw, 5))
            index = tf.random.stateless_uniform((), which, 0, len(images), dtype=tf.int32)
            tile = tf.image.stateless_random_crop(tf.gather(stacked, index), (size, size, channels + 1), crop)
            tile = tf.image.stateless_random_flip_left_right(tile, left_right)
            if rotate:
                tile = tf.image.stateless_random_flip_up_down(tile, up_down)
                tile = tf.image.rot90(tile, tf.random.stateless_uniform((), turn, 0, 4, dtype=tf.int32))
            return tile[..., :channels], tile[..., channels]

        return draws.take(self.info.split_sizes["train"]).map(random_tile, num_parallel_calls=tf.data.AUTOTUNE)


# --- ISBI 2012 EM membranes -------------------------------------------------------------------------------


@register_dataset(
    "isbi-em-membrane",
    description="ISBI 2012 EM sections (U-Net paper data): 30 512x512 grayscale slices, membrane vs cell masks",
    class_names=EM_CLASSES,
    max_value=255.0,
    augmentation=TILES,
    image_size=EM_TILE,
)
def load_isbi_em_membrane(data_dir: Path) -> MaskFiles:
    """`train/image/{i}.png` and `train/label/{i}.png` (the challenge's test slices have no labels, so the
    last EM_TEST_IMAGES labelled ones are held out)."""
    folder = data_dir / "isbi-em-membrane" / "train"
    images, labels = folder / "image", folder / "label"
    if not images.is_dir() or not labels.is_dir():
        raise DataError(f"ISBI EM membrane data not found: expected {images} and {labels} (PNG slices)")
    files = sorted(images.glob("*.png"), key=lambda path: (len(path.stem), path.stem))  # 0, 1, ..., 10, ...
    if len(files) <= EM_TEST_IMAGES + 1:
        raise DataError(f"{images} has {len(files)} PNG slices; at least {EM_TEST_IMAGES + 2} are needed")
    pairs = [(path, labels / path.name) for path in files]
    for _, label in pairs:
        if not label.is_file():
            raise DataError(f"{label} is missing: every slice in {images} needs its label")
    return MaskFiles(
        pairs[:-EM_TEST_IMAGES], pairs[-EM_TEST_IMAGES:], EM_CLASSES, 1, lambda mask: mask > 127, TILES, EM_TILE
    )


# --- Oxford-IIIT pets --------------------------------------------------------------------------------------


@register_dataset(
    "oxford-pets",
    description="Oxford-IIIT pets: 7,349 photos with pet / background / border trimaps (local copy, or tfds)",
    class_names=PET_CLASSES,
    max_value=255.0,
    augmentation=RESIZE,
    image_size=PET_SIZE,
)
def load_oxford_pets(data_dir: Path) -> MaskFiles:
    """The original layout: `images/<name>.jpg`, `annotations/trimaps/<name>.png` and the split lists
    `annotations/{trainval,test}.txt` (a name first on each line); downloaded through tfds when absent."""
    folder = data_dir / "oxford-pets"
    if not folder.is_dir():
        _download_pets(folder)
    train, test = (_pet_pairs(folder, split) for split in ("trainval", "test"))
    return MaskFiles(train, test, PET_CLASSES, 3, _trimap_classes, RESIZE, PET_SIZE)


def _trimap_classes(trimap: np.ndarray) -> np.ndarray:
    if trimap.min() < 1 or trimap.max() > len(PET_CLASSES):
        raise ValueError(f"trimap values {np.unique(trimap).tolist()}; expected 1 (pet), 2 (background), 3 (border)")
    return trimap - 1


def _pet_pairs(folder: Path, split: str) -> list[Pair]:
    listing = folder / "annotations" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(f"{listing} is missing (Oxford-IIIT pets lists each split's image names there)")
    names = [line.split()[0] for line in listing.read_text().splitlines() if line.strip() and not line.startswith("#")]
    pairs = [(folder / "images" / f"{name}.jpg", folder / "annotations" / "trimaps" / f"{name}.png") for name in names]
    for pair in pairs:
        for path in pair:
            if not path.is_file():
                raise DataError(f"{path} is missing ({listing.name} lists it)")
    return pairs


def _download_pets(folder: Path) -> None:
    """Fetch tfds's `oxford_iiit_pet` and write it in the original layout (renamed into place when whole)."""
    try:
        import tensorflow_datasets as tfds

        splits = tfds.load("oxford_iiit_pet", split=["train", "test"], decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as err:  # any network or cache failure means the same thing to the user
        raise DataError(
            f"Oxford-IIIT pets is not in {folder} and could not be downloaded ({type(err).__name__}: {err}); "
            "put images/*.jpg, annotations/trimaps/*.png and annotations/{trainval,test}.txt there"
        ) from err
    from PIL import Image

    partial = folder.with_name(folder.name + ".partial")
    images, trimaps = partial / "images", partial / "annotations" / "trimaps"
    images.mkdir(parents=True, exist_ok=True)
    trimaps.mkdir(parents=True, exist_ok=True)
    for listing, split in zip(("trainval", "test"), splits):
        names = []
        for example in split.as_numpy_iterator():
            name = Path(example["file_name"].decode()).stem
            (images / f"{name}.jpg").write_bytes(example["image"])
            Image.fromarray(example["segmentation_mask"][..., 0]).save(trimaps / f"{name}.png")
            names.append(name)
        (partial / "annotations" / f"{listing}.txt").write_text("\n".join(names) + "\n")
    partial.rename(folder)
