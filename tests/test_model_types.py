"""The model-type seam: a new kind of network is one class plus a registration.

A toy model type (two valid convolutions, so it consumes a 2-pixel margin) is
registered and goes through the same code as the shipped networks: training
with checkpoints and a card, loading by card, tiled inference, segmentation.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from nucleiseg import cards, model_types, synthetic
from nucleiseg.inference import predict_probabilities, segment
from nucleiseg.model_types import ModelType


class Toy(ModelType):
    name = "toy"
    margin = 2  # two 3x3 valid convolutions
    multiple = 1

    def build(self, spec):
        import keras
        from keras import layers

        inputs = keras.Input((None, None, 1))
        x = layers.Conv2D(int(spec.get("width", 4)), 3, padding="valid", activation="relu")(inputs)
        outputs = layers.Conv2D(len(self.classes), 3, padding="valid", activation="softmax")(x)
        return keras.Model(inputs, outputs, name="toy")

    def architecture(self, width=None):
        return {"name": self.name, "width": int(width or 4), "n_classes": len(self.classes)}


@pytest.fixture
def toy():
    model_type = model_types.register(Toy())
    yield model_type
    model_types.unregister("toy")
    cards.clear_cache()


def test_a_registered_toy_type_trains_loads_and_segments_through_the_shared_paths(toy, tmp_path):
    from nucleiseg.training import TrainConfig, train

    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    config = TrainConfig(network="toy", base_filters=3, data=str(data), train_split="all", val_split="all",
                         crop=32, batch_size=2, steps_per_epoch=2, epochs=2, patience=5)
    card_path = train(config, tmp_path / "models" / "toy", tmp_path / "ck")
    card = json.loads(card_path.read_text())
    assert card["architecture"] == {"name": "toy", "width": 3, "n_classes": 3}
    assert card["training"]["epochs"] == 2 and len(card["history"]) == 2

    model = cards.load(card_path)
    assert model.model_type is toy
    image, _ = synthetic.generate_one(5, size=40)
    probabilities, labels = segment(image, model)
    assert probabilities.shape == (40, 40, 3) and labels.shape == (40, 40)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    # Tiling honours the type's margin: small tiles give the whole-image result.
    tiled = predict_probabilities(image, model, tile=16, overlap=8)
    np.testing.assert_allclose(tiled, probabilities, atol=1e-5)
    # Resuming finds the toy's checkpoint (its layers load through the registry).
    again = train(TrainConfig(**{**config.__dict__, "epochs": 3}), tmp_path / "models" / "toy", tmp_path / "ck")
    assert json.loads(again.read_text())["training"]["epochs"] == 3


def test_a_type_s_post_processing_defaults_and_class_weights_reach_training(toy, monkeypatch):
    from nucleiseg.training import TrainConfig

    monkeypatch.setattr(toy, "postprocess_defaults", {"dilation": 0, "min_size": 3})
    config = TrainConfig(network="toy", val_postprocess={"min_size": 7})
    assert (config.val_settings().dilation, config.val_settings().min_size) == (0, 7)
    assert model_types.get("unet").class_weights(5) == (1.0, 1.0, 5.0)


def test_registry_refuses_unknown_duplicate_and_built_in_removal(toy):
    assert model_types.names()[:2] == ["unet", "deepcell"] and "toy" in model_types.names()
    with pytest.raises(ValueError, match="unknown model type 'nope'.*unet, deepcell"):
        model_types.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        model_types.register(Toy())
    with pytest.raises(ValueError, match="built-in"):
        model_types.unregister("unet")
    with pytest.raises(ValueError, match="inference mode 'patch'"):
        toy.check_mode("patch")
    assert model_types.get("deepcell").check_mode("patch") == "patch"


def test_listing_model_types_does_not_import_keras():
    code = ("import sys, nucleiseg.model_types as m; [m.get(n).default_card for n in m.names()]; "
            "assert not any(k == 'keras' or k.startswith(('keras.', 'tensorflow')) for k in sys.modules), 'keras imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_built_in_types_describe_their_networks():
    unet, deepcell = model_types.get("unet"), model_types.get("deepcell")
    assert (unet.margin, unet.multiple, deepcell.margin, deepcell.multiple) == (0, 8, 30, 1)
    assert unet.architecture(16) == {"name": "unet", "base_filters": 16, "n_classes": 3}
    assert deepcell.architecture() == {"name": "deepcell", "n_classes": 3}
    assert (unet.default_optimizer, deepcell.default_optimizer) == ("adam", "sgd")
    assert unet.default_card.is_file() and deepcell.default_card.is_file()
