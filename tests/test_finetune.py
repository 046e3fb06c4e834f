"""python -m nucleiseg.finetune: one command from a folder of annotated images to a model card.

Runs end to end on a few small synthetic images with a width-2 U-Net as the starting model and a
budget of seconds; bad inputs are refused, naming the file or setting, before anything is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from nucleiseg import cards, finetune, layouts, synthetic
from nucleiseg.augment import AugmentationConfig
from nucleiseg.training import TrainConfig, clock, seconds_left

N_IMAGES, SIZE = 4, 48  # 48: a multiple of the U-Net's 8, and the crop the runs use


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A synthetic folder: images/ (16-bit PNG) and masks/ (16-bit instance labels)."""
    folder = tmp_path_factory.mktemp("own-images")
    synthetic.generate(folder, n=N_IMAGES, size=SIZE)
    return folder


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    """A width-2 U-Net card with tuned-looking post-processing, as a starting model."""
    import keras

    from nucleiseg.model_types.unet import build_unet

    folder = tmp_path_factory.mktemp("start")
    weights = folder / "tiny-start.weights.h5"
    keras.utils.set_random_seed(0)
    build_unet(2).save_weights(weights)
    card = {"name": "tiny-start", "architecture": {"name": "unet", "base_filters": 2, "n_classes": 3},
            "normalization": {"method": "percentile", "low": 1, "high": 99}, "classes": ["background", "interior", "boundary"],
            "targets": {"boundary_width": 1}, "postprocess": {"min_size": 5, "dilation": 1}}
    return cards.write_card(card, weights)


def copy_folder(data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the images and masks that a test may damage."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(data / "images", images)
    shutil.copytree(data / "masks", masks)
    return images, masks


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


def run_command(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = finetune.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def finetuned(data, start, tmp_path_factory):
    """One run of the command whose fine-tuned model is written (any held-out result is accepted)."""
    out = tmp_path_factory.mktemp("mine") / "models" / "plate1"
    argv = ["--images", str(data / "images"), "--masks", str(data / "masks"), "--out", str(out), "--init", str(start),
            "--minutes", "0.05", "--crop", str(SIZE), "--min-gain", "-1", "--seed", "3"]
    code, printed, errors = run_command(argv)
    assert code == 0, errors
    return out, printed, argv


# --- end to end -------------------------------------------------------------------------------


def test_the_command_writes_a_loadable_card_with_what_it_did(finetuned, data, start):
    out, printed, argv = finetuned
    card_path = out.with_suffix(".json")
    assert sorted(p.name for p in out.parent.iterdir()) == ["plate1.json", "plate1.onnx", "plate1.weights.h5"]
    model = cards.load(card_path, engine="tensorflow")  # checksum verified, network built
    card = json.loads(card_path.read_text())
    # The ONNX file is the trained weights' (its card fields as the export writes them).
    assert card["onnx"] == "plate1.onnx" and card["onnx_sha256"] == cards.sha256_of(out.parent / "plate1.onnx")
    assert card["onnx_weights_sha256"] == card["sha256"] and cards.load(card_path, engine="onnxruntime").engine == "onnxruntime"
    record = card["fine_tuning"]
    start_card = json.loads(start.read_text())
    assert card["name"] == "plate1" and card["architecture"] == start_card["architecture"]
    assert model.normalization == start_card["normalization"]
    assert not record["kept_starting_model"] and record["result"] == "fine-tuned model" and not record["from_scratch"]
    # Every image is used once: about 20 % held out (one of four), the rest trained on.
    everything = sorted(p.name for p in (data / "images").iterdir())
    assert len(record["held_out_images"]) == 1
    assert sorted(record["training_images"] + record["held_out_images"]) == everything
    assert card["training"]["held_out_for_validation"] == [Path(n).stem for n in record["held_out_images"]]
    assert record["images_folder"] == str(data / "images") and card["training"]["data"] == str(data / "images")
    assert record["starting_model"] == {"name": "tiny-start", "card": str(start), "weights_sha256": start_card["sha256"]}
    assert card["training"]["initial_weights"]["sha256"] == start_card["sha256"]
    assert record["steps"] == card["training"]["steps"] >= 1 and record["epochs"] == card["training"]["epochs"] >= 1
    assert 0 < record["training_minutes"] <= record["total_minutes"] and record["budget_minutes"] == 0.05
    assert record["augmentation"] == {"recipe": "robust", **AugmentationConfig.robust().to_dict()}
    assert card["training"]["augmentation"]["scale"] == [0.5, 2.0]
    assert record["learning_rate"] == pytest.approx(2e-4) and record["crop"] == SIZE
    assert record["command"] == "python -m nucleiseg.finetune " + " ".join(argv)
    # Post-processing chosen on the three training images: the search's (recorded as
    # tune_postprocess records it) or the starting model's, whichever scored higher there.
    assert card["postprocess"] == record["postprocess"]["fine_tuned"]
    assert record["postprocess"]["starting_model"] == cards.tuned_postprocess(start).to_dict()
    choice = record["postprocess"]["fine_tuned_choice"]
    assert choice["chosen_on"] == "the 3 training images (held-out ones excluded)"
    if choice["chosen"] == "tune_postprocess search":
        assert choice["search_f1_mean"] > choice["starting_settings_f1_mean"]
        assert card["postprocess_tuning"]["images"] == 3
    else:
        assert choice["search_f1_mean"] <= choice["starting_settings_f1_mean"]
        assert card["postprocess"] == record["postprocess"]["starting_model"] and "postprocess_tuning" not in card
    # The weights are the trained ones, not a copy of the start.
    assert card["sha256"] != start_card["sha256"]
    scores = record["held_out_scores"]
    assert scores["starting_model"]["images"] == scores["fine_tuned"]["images"] == 1
    assert f"starting model  {scores['starting_model']['f1_mean']:.3f}" in printed
    assert f"fine-tuned      {scores['fine_tuned']['f1_mean']:.3f}" in printed


def test_batch_normalization_keeps_the_starting_statistics_by_default(finetuned, start):
    """Fine-tuning on batches of a few crops: the normalization layers stay as the start had them."""
    import keras

    out, _, _ = finetuned
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["fine_tuning"]["batchnorm"] == "frozen" and card["training"]["freeze_batchnorm"]
    tuned, first = cards.load(out.with_suffix(".json"), engine="tensorflow"), cards.load(start, engine="tensorflow")
    frozen = trained = 0
    for before, after in zip(first.networks[0].layers, tuned.networks[0].layers):
        if not before.weights:
            continue
        same = all(np.array_equal(a, b) for a, b in zip(before.get_weights(), after.get_weights()))
        if isinstance(before, keras.layers.BatchNormalization):
            frozen += same
            assert same, before.name
        else:
            trained += not same
    assert frozen > 0 and trained > 0  # the convolutions did learn


def test_the_held_out_scores_are_the_metric_of_the_one_inference_path(finetuned, data, start):
    from nucleiseg.inference import segment
    from nucleiseg.metric import score_image

    out, _, _ = finetuned
    card_path = out.with_suffix(".json")
    record = json.loads(card_path.read_text())["fine_tuning"]
    (name,) = record["held_out_images"]
    image = layouts.read_image(data / "images" / name)
    labels = layouts.read_labels(data / "masks" / name)
    for card, key in ((start, "starting_model"), (card_path, "fine_tuned")):
        # TensorFlow: the engine the held-out images were scored with, before the ONNX file existed.
        predicted = segment(image, cards.load(card, engine="tensorflow"), cards.tuned_postprocess(card))[1]
        assert record["held_out_scores"][key]["f1_mean"] == pytest.approx(score_image(labels, predicted).f1_mean)


@pytest.mark.parametrize("search_wins", [True, False])
def test_post_processing_is_the_better_on_the_training_images(search_wins, data, start, tmp_path, monkeypatch):
    """The search's settings replace the starting model's only when they score higher on the
    training images; the held-out images play no part."""
    from nucleiseg import tune_postprocess
    from nucleiseg.postprocess import PostprocessSettings

    for path in (start, start.with_name(json.loads(start.read_text())["weights"])):
        shutil.copy(path, tmp_path / path.name)
    card = tmp_path / start.name
    staging = tmp_path / "data"
    shutil.copytree(data, staging)
    (staging / f"{finetune.FIT_SPLIT}.txt").write_text("synth_000\nsynth_001\n")
    settings = cards.tuned_postprocess(card)
    kept = finetune._scores(card, finetune.training.load_examples(staging, "all", None, names=["synth_000", "synth_001"]),
                            settings)["f1_mean"]
    searched = PostprocessSettings(interior_threshold=0.7, min_size=25)
    seen = []

    def search(card_path, data_dir, split, images=60, **_):
        seen.append((Path(data_dir), split, images))
        return {"best": searched.to_dict(), "f1_mean": kept + (0.1 if search_wins else 0.0), "default_settings_f1_mean": 0.0,
                "images": 2, "grid": {}}

    monkeypatch.setattr(tune_postprocess, "tune", search)
    chosen, record = finetune._choose_postprocess(card, staging, ["synth_000", "synth_001"], settings,
                                                  finetune._Progress(io.StringIO()))
    assert seen == [(staging, finetune.FIT_SPLIT, 0)]
    assert record["starting_settings_f1_mean"] == round(kept, 4)
    written = json.loads(card.read_text())
    if search_wins:
        assert chosen == searched and record["chosen"] == "tune_postprocess search"
        assert written["postprocess"] == searched.to_dict() and written["postprocess_tuning"]["images"] == 2
    else:
        assert chosen == settings and record["chosen"] == "the starting model's settings"
        assert written == json.loads(start.read_text())


def test_progress_shows_elapsed_and_remaining_time(finetuned):
    _, printed, _ = finetuned
    assert "elapsed] measuring the training step time" in printed
    assert "epoch(s) of" in printed and "of the 0.05-minute budget" in printed
    training_line = next(line for line in printed.replace("\r", "\n").splitlines() if line.startswith("epoch 1 ["))
    assert " elapsed, ~" in training_line and training_line.endswith(" left")


def test_cellprofilers_unet_module_accepts_the_card(finetuned):
    pytest.importorskip("cellprofiler_core")
    import nucleus_module_helpers as helpers
    from plugin_files import load_plugin

    from nucleiseg.inference import segment

    out, _, _ = finetuned
    card_path = out.with_suffix(".json")
    module, pipeline = helpers.make_module(load_plugin("classifyboundariesunet").ClassifyBoundariesUNet, card_path)
    module.validate_module(pipeline)
    image = helpers.synthetic_image()
    _, (workspace,) = helpers.run_images(module, pipeline, [image])
    found = workspace.object_set.get_objects("Nuclei").segmented
    expected = segment(image, cards.load(card_path), cards.tuned_postprocess(card_path),
                       normalization=module.normalization())[1]
    np.testing.assert_array_equal(found, expected)


def test_headless_cellprofiler_runs_the_card_in_the_unet_pipeline(finetuned, data, tmp_path):
    """What a user does next: unet.cppipe with *Custom model file* set to the card, headless."""
    import os
    import subprocess
    import sys

    pytest.importorskip("cellprofiler_core")
    from plugin_files import PLUGINS_DIR

    from nucleiseg.inference import segment

    out, _, _ = finetuned
    card_path = out.with_suffix(".json")
    made = subprocess.run([sys.executable, "-m", "nucleiseg_cellprofiler.pipelines", "unet", "--model-card", str(card_path),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    pipeline = tmp_path / "unet.cppipe"
    assert f"Model card file:{card_path.resolve()}" in pipeline.read_text().replace("\\\\", "/")
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{path}\n" for folder in ("images", "masks") for path in sorted((data / folder).iterdir())))
    env = dict(os.environ, HOME=str(tmp_path))  # CellProfiler's config stays out of the real home
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "cellprofiler"), "-c", "-r", "-p", str(pipeline),
                          "--plugins-directory", str(PLUGINS_DIR), "-e", "imageio_reader", "-o", str(tmp_path / "out"),
                          "--file-list", str(listing)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    model, settings = cards.load(card_path), cards.tuned_postprocess(card_path)
    for image_path in sorted((data / "images").iterdir()):
        found = layouts.read_labels(tmp_path / "out" / "labels" / f"{image_path.stem}.tiff")
        np.testing.assert_array_equal(found, segment(layouts.read_image(image_path), model, settings)[1])


def test_the_starting_model_is_kept_when_fine_tuning_does_not_beat_it(data, start, tmp_path):
    printed = io.StringIO()
    result = finetune.finetune(data / "images", data / "masks", tmp_path / "kept", init=start, minutes=0.05,
                               crop=SIZE, min_gain=1.0, stream=printed)
    assert result.kept_starting_model and result.card == tmp_path / "kept.json"
    assert result.weights.read_bytes() == start.with_name(json.loads(start.read_text())["weights"]).read_bytes()
    card = json.loads(result.card.read_text())
    start_card = json.loads(start.read_text())
    # The starting model's weights, settings and record, under the new name with what was tried.
    assert card["postprocess"] == start_card["postprocess"] and card["sha256"] == start_card["sha256"]
    assert card["name"] == "kept" and "training" not in card
    assert card["fine_tuning"]["kept_starting_model"] and card["fine_tuning"]["steps"] >= 1
    assert card["fine_tuning"]["result"].startswith("starting model kept")
    assert result.starting_f1 == card["fine_tuning"]["held_out_scores"]["starting_model"]["f1_mean"]
    assert "fine-tuning did not help by more than 1: kept the starting model's weights" in printed.getvalue()
    cards.load(result.card)


# --- bad input: a clear error naming the file or setting, nothing written ------------------------


def refused(images: Path, masks: Path, out: Path, **settings) -> str:
    """The error of a fine-tune that must not start; checks that nothing was written."""
    with pytest.raises(layouts.DataError) as caught:
        finetune.finetune(images, masks, out, **{"crop": SIZE, "minutes": 0.05, **settings})
    assert not out.parent.exists() or files_under(out.parent) == [], files_under(out.parent)
    assert str(caught.value).startswith("cannot fine-tune; nothing was written")
    return str(caught.value)


def test_missing_and_unmatched_masks_are_all_named(data, start, tmp_path):
    images, masks = copy_folder(data, tmp_path)
    (masks / "synth_001.png").unlink()
    (masks / "synth_002.png").unlink()
    shutil.copy(data / "masks" / "synth_000.png", masks / "synth_000_extra.png")
    message = refused(images, masks, tmp_path / "out" / "m", init=start)
    assert (f"2 image(s) without a mask in {masks} (named as the image, or with one of the endings "
            f"{', '.join(layouts.MASK_SUFFIXES)}): {images / 'synth_001.png'}, {images / 'synth_002.png'}") in message
    assert f"1 mask(s) without an image of the same stem in {images}: {masks / 'synth_000_extra.png'}" in message


def test_masks_named_after_their_image_with_an_ending_are_paired(data, start, tmp_path):
    images, masks = copy_folder(data, tmp_path)
    for stem, ending in (("synth_000", "_masks"), ("synth_001", "_cp_masks"), ("synth_002", "-Labels")):
        (masks / f"{stem}.png").rename(masks / f"{stem}{ending}.png")
    checked = finetune.check_inputs(images, masks, tmp_path / "out" / "m", init=start, crop=SIZE)
    assert checked.stems == [f"synth_{i:03d}" for i in range(N_IMAGES)]
    assert [path.name for path in checked.masks] == ["synth_000_masks.png", "synth_001_cp_masks.png",
                                                     "synth_002-Labels.png", "synth_003.png"]
    assert "masks paired by the image's stem followed by '-labels' (1), '_cp_masks' (1), '_masks' (1)" in checked.notes
    # Two masks for one image: both named, nothing trained.
    shutil.copy(masks / "synth_003.png", masks / "synth_003_mask.png")
    message = refused(images, masks, tmp_path / "out" / "m", init=start)
    assert f"several masks for the image stem 'synth_003': {masks / 'synth_003.png'}, {masks / 'synth_003_mask.png'}" in message


def test_missing_folders_are_named(start, tmp_path):
    message = refused(tmp_path / "no-images", tmp_path / "no-masks", tmp_path / "out" / "m", init=start)
    assert f"--images {tmp_path / 'no-images'}: folder not found" in message
    assert f"--masks {tmp_path / 'no-masks'}: folder not found" in message


def test_empty_masks_and_an_empty_image_folder_are_named(data, start, tmp_path):
    images, masks = copy_folder(data, tmp_path)
    iio.imwrite(masks / "synth_002.png", np.zeros((SIZE, SIZE), np.uint16))
    message = refused(images, masks, tmp_path / "out" / "m", init=start)
    assert f"{masks / 'synth_002.png'}: empty mask (no nuclei); annotate its nuclei or leave the image out" in message
    assert "(1 problem)" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message = refused(empty, masks, tmp_path / "out" / "m", init=start)
    assert f"--images {empty}: no images (.png/.tif/.tiff)" in message and "(1 problem)" in message


def test_binary_and_semantic_masks_are_refused_unless_components_are_labelled(data, start, tmp_path):
    images, masks = copy_folder(data, tmp_path)
    labels = layouts.read_labels(masks / "synth_001.png")  # the dense scene: many nuclei
    iio.imwrite(masks / "synth_001.png", ((labels > 0) * 255).astype(np.uint8))  # binary, 8-bit
    classes = np.where(labels % 2 == 1, 1, 2) * (labels > 0)  # two classes of nuclei
    iio.imwrite(masks / "synth_003.png", classes.astype(np.uint16))
    message = refused(images, masks, tmp_path / "out" / "m", init=start)
    assert f"{masks / 'synth_001.png'}: " in message and "a binary (one foreground value) mask, not instance labels" in message
    assert f"{masks / 'synth_003.png'}: " in message and "a semantic (2 class values) mask" in message
    assert message.count("pass --label-components") == 2
    assert "synth_000.png" not in message and "synth_002.png" not in message
    # With --label-components each connected object of one value is a nucleus.
    checked = finetune.check_inputs(images, masks, tmp_path / "out" / "m", init=start, crop=SIZE, label_components=True)
    binary = checked.arrays[checked.stems.index("synth_001")][1]
    np.testing.assert_array_equal(binary, layouts.colour_to_labels(labels > 0))
    assert binary.max() > 1 and any(note.startswith("--label-components: ") for note in checked.notes)
    assert not (tmp_path / "out").exists()


def test_instance_labels_with_a_stray_fragment_are_accepted():
    labels = np.zeros((40, 40), np.int32)
    for index in range(12):
        row, col = divmod(index, 4)
        labels[row * 12 + 1 : row * 12 + 6, col * 10 + 1 : col * 10 + 6] = index + 1
    labels[38, 38] = 1  # a stray pixel of nucleus 1
    assert finetune.instance_problem(labels, Path("m.png")) is None
    assert "binary" in finetune.instance_problem((labels > 0).astype(np.int32), Path("m.png"))
    # One value over three separate nuclei is binary; a lone nucleus in two pieces is not.
    three = (labels > 0) & (np.arange(40)[:, None] < 12) & (np.arange(40)[None, :] < 30)
    assert finetune.instance_problem(three.astype(np.int32), Path("m.png")).startswith(
        "m.png: 3 separate objects share 1 label value(s): a binary (one foreground value) mask")
    assert finetune.instance_problem((labels == 1).astype(np.int32), Path("m.png")) is None


def test_images_smaller_than_the_crop_are_named_with_a_crop_that_fits(data, start, tmp_path):
    message = refused(data / "images", data / "masks", tmp_path / "out" / "m", init=start, crop=64)
    assert f"{N_IMAGES} image(s) smaller than the 64-pixel training crop: {data / 'images' / 'synth_000.png'} (48x48)" in message
    assert "pass a smaller --crop (at most 48, a multiple of 8)" in message
    assert "--crop 60: must be a positive multiple of 8 for the unet" in refused(
        data / "images", data / "masks", tmp_path / "out" / "m", init=start, crop=60)


def test_a_single_image_too_small_to_split_is_refused(data, start, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    shutil.copy(data / "images" / "synth_000.png", images)
    shutil.copy(data / "masks" / "synth_000.png", masks)
    message = refused(images, masks, tmp_path / "out" / "m", init=start)
    assert (f"{images / 'synth_000.png'}: the only image, 48x48, is too small to hold out a strip of 32 pixels and "
            f"train on the rest: the rest would be smaller than the 48-pixel crop; annotate a second image or pass a "
            "smaller --crop") in message
    assert "--holdout 1: with one image, a strip of it is held out" in refused(
        images, masks, tmp_path / "out" / "m", init=start, crop=8, holdout=1)
    (masks / "synth_000.png").unlink()
    assert f"no matched image in {images}" in refused(images, masks, tmp_path / "out" / "m", init=start)


def test_a_single_image_is_split_into_a_training_part_and_a_held_out_strip():
    image = np.arange(100 * 140, dtype=np.uint16).reshape(100, 140)
    labels = np.zeros((100, 140), np.int32)
    labels[10:20, 10:20], labels[40:60, 100:120], labels[70:80, 130:140] = 5, 9, 2  # 9 is cut by the border
    (train_image, train_labels), (held_image, held_labels), where = finetune.split_single_image(image, labels, crop=96)
    # The longer side (140 columns): 20 % (28) is less than the 32-pixel minimum.
    assert where == "its last 32 columns" and train_image.shape == (100, 108) and held_image.shape == (100, 32)
    np.testing.assert_array_equal(np.hstack([train_image, held_image]), image)
    assert sorted(np.unique(train_labels)) == [0, 1, 2] and sorted(np.unique(held_labels)) == [0, 1, 2]
    np.testing.assert_array_equal(np.hstack([train_labels, held_labels]) > 0, labels > 0)
    assert "smaller than the 120-pixel crop" in finetune.split_single_image(image, labels, crop=120)
    labels[:, 108:] = 0
    assert finetune.split_single_image(image, labels, crop=96) == "its held-out strip (the last 32 columns) has no nucleus"


def test_one_image_trains_from_scratch_on_its_training_part(start, tmp_path):
    folder = tmp_path / "one"
    synthetic.generate(folder, n=1, size=96)
    printed = io.StringIO()
    result = finetune.finetune(folder / "images", folder / "masks", tmp_path / "mine" / "scratch", init=start,
                               minutes=0.05, crop=SIZE, from_scratch=True, onnx=False, stream=printed)
    card = json.loads(result.card.read_text())
    record = card["fine_tuning"]
    assert sorted(p.name for p in result.card.parent.iterdir()) == ["scratch.json", "scratch.weights.h5"]
    assert record["from_scratch"] and not result.kept_starting_model and result.starting_f1 is None
    assert record["result"] == "trained from scratch" and "initial_weights" not in card["training"]
    assert record["training_images"] == ["synth_000.png (all but last 32 columns)"]
    assert record["held_out_images"] == ["synth_000.png (its last 32 columns)"]
    assert card["training"]["held_out_for_validation"] == ["synth_000.held-out"]
    assert record["held_out_scores"]["starting_model"] is None and record["held_out_scores"]["fine_tuned"]["images"] == 1
    assert record["learning_rate"] == pytest.approx(1e-3)  # the model type's rate, not a fine-tune's fifth of it
    assert record["batchnorm"] == "trained"  # random statistics must be learnt
    assert record["postprocess"]["starting_model"] == finetune.PostprocessSettings().to_dict()
    assert "starting model  -      (none: trained from scratch" in printed.getvalue()
    cards.load(result.card)


def test_an_out_inside_models_is_refused_even_with_overwrite(data, start, tmp_path):
    shipped = finetune.default_init()
    assert shipped == cards.MODELS_DIR / "unet" / "unet-dsb2018.json"
    before = shipped.read_bytes()
    for out, overwrite in ((shipped.with_suffix(""), True), (cards.MODELS_DIR / "unet" / "mine", False)):
        with pytest.raises(layouts.DataError) as caught:
            finetune.finetune(data / "images", data / "masks", out, init=start, crop=SIZE, overwrite=overwrite)
        assert f"--out {out}: inside {cards.MODELS_DIR}, which holds the shipped models" in str(caught.value)
    assert shipped.read_bytes() == before and not (cards.MODELS_DIR / "unet" / "mine.json").exists()


def test_an_existing_card_is_kept_unless_overwrite(data, start, tmp_path):
    out = tmp_path / "out" / "m"
    out.parent.mkdir()
    out.with_suffix(".json").write_text("{}")
    with pytest.raises(layouts.DataError) as caught:
        finetune.finetune(data / "images", data / "masks", out, init=start, crop=SIZE)
    assert f"--out {out}: {out}.json exist(s); choose another name or pass --overwrite" in str(caught.value)
    assert files_under(out.parent) == [out.with_suffix(".json")] and out.with_suffix(".json").read_text() == "{}"
    assert finetune.check_inputs(data / "images", data / "masks", out, init=start, crop=SIZE, overwrite=True).out == out


def test_bad_settings_and_starting_models_are_named(data, start, tmp_path):
    out = tmp_path / "out" / "m"
    message = refused(data / "images", data / "masks", out, init=tmp_path / "none.json", holdout=4, minutes=0, batch_size=0)
    assert f"--init {tmp_path / 'none.json'}: model card not found: {tmp_path / 'none.json'}" in message
    assert "--holdout 4: must be between 1 and 3 (4 images)" in message
    assert "--minutes 0: the training budget must be positive" in message
    assert "--batch-size 0: must be at least 1" in message
    ensemble = cards.save_card({"name": "pair", "members": [start.name, start.name]}, start.with_name("pair.json"))
    assert f"--init {ensemble}: an ensemble of 2 networks" in refused(data / "images", data / "masks", out, init=ensemble)
    for settings, text in (({"augmentation": "heavy"}, "--augmentation 'heavy'"), ({"min_gain": 2}, "--min-gain 2"),
                           ({"learning_rate": 0}, "--learning-rate 0")):
        with pytest.raises(ValueError, match=text):
            finetune.finetune(data / "images", data / "masks", out, init=start, **settings)
    assert not out.parent.exists()


def test_the_command_prints_the_error_and_writes_nothing(data, start, tmp_path):
    out = tmp_path / "out" / "m"
    code, printed, errors = run_command(["--images", str(data / "images"), "--masks", str(data / "masks"),
                                         "--out", str(out), "--init", str(start)])
    assert code == 2 and printed == ""
    assert errors.startswith("python -m nucleiseg.finetune: error: cannot fine-tune; nothing was written (1 problem):")
    assert "smaller than the 256-pixel training crop" in errors and not out.parent.exists()


# --- the time budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, step, overhead", [(900, 2.5, 4.0), (900, 0.3, 60.0), (60, 0.05, 1.0), (20, 1.0, 3.0)])
def test_epochs_are_sized_to_end_within_the_budget(seconds, step, overhead):
    epochs, steps = finetune.plan_epochs(seconds, step, overhead)
    assert 1 <= epochs <= finetune.TARGET_EPOCHS and steps >= 1
    assert epochs * (steps * step + overhead) <= seconds
    # Scoring stays a small part of each epoch, unless the budget is too short for that.
    if seconds >= overhead / finetune.MAX_VALIDATION_SHARE:
        assert overhead <= finetune.MAX_VALIDATION_SHARE * (steps * step + overhead) + step


def test_a_budget_shorter_than_one_step_still_runs_one():
    assert finetune.plan_epochs(1.0, 2.0, 5.0) == (1, 1)
    assert finetune.plan_epochs(-3.0, 2.0, 5.0) == (1, 1)


def test_time_left_counts_the_epochs_that_start_within_the_budget():
    config = TrainConfig(epochs=10, steps_per_epoch=10, max_minutes=1.0)
    # 1 s a step: this epoch ends at 10 s; epochs then end at 20 ... 70 s, the last one
    # starting before the 60 s budget is spent (the budget is checked after each epoch).
    assert seconds_left(config, 0, elapsed=5.0, epoch_elapsed=5.0, steps_done=5) == pytest.approx(65.0)
    assert seconds_left(TrainConfig(epochs=3, steps_per_epoch=10), 0, 5.0, 5.0, 5) == pytest.approx(25.0)
    # With finished epochs their mean duration (validation included) is used.
    assert seconds_left(config, 5, elapsed=62.0, epoch_elapsed=2.0, steps_done=2, seconds_per_epoch=12.0) == pytest.approx(10.0)
    assert [clock(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]


def test_default_holdout_is_about_a_fifth_and_leaves_one_to_train():
    assert [finetune.default_holdout(n) for n in (2, 3, 5, 8, 10, 23)] == [1, 1, 1, 2, 2, 5]
