"""Weight averaging (nucleiseg.training.averaging) and the training option that ships it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nucleiseg import cards, synthetic
from nucleiseg.model_types.unet import build_unet
from nucleiseg.training import TrainConfig, checkpoint_files, load_examples, make_batch, train
from nucleiseg.training.averaging import average_weight_files, batchnorm_layers, recompute_batchnorm


def _perturbed(network, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [w + rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in network.get_weights()]


def test_average_of_weight_files_is_their_elementwise_mean(tmp_path):
    network = build_unet(2)
    saved = []
    for seed in (1, 2, 3):
        weights = _perturbed(network, seed)
        network.set_weights(weights)
        network.save_weights(tmp_path / f"{seed}.weights.h5")
        saved.append(weights)
    target = build_unet(2)
    average_weight_files(target, [tmp_path / f"{s}.weights.h5" for s in (1, 2, 3)])
    for got, *parts in zip(target.get_weights(), *saved):
        np.testing.assert_allclose(got, np.mean(parts, axis=0), rtol=1e-6, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="4.weights.h5"):
        average_weight_files(target, [tmp_path / "1.weights.h5", tmp_path / "4.weights.h5"])
    with pytest.raises(ValueError, match="at least one"):
        average_weight_files(target, [])


def test_batchnorm_statistics_are_measured_on_training_batches(tmp_path):
    """With one batch the moving statistics are that batch's, so inference equals training mode on it."""
    data = tmp_path / "data"
    synthetic.generate(data, n=3, size=64)
    examples = load_examples(data, "train", {"method": "percentile", "low": 0.1, "high": 99.9})
    config = TrainConfig(network="unet", base_filters=2, data=str(data), crop=48, batch_size=2)
    network = build_unet(2)
    layers = batchnorm_layers(network)
    momenta = [layer.momentum for layer in layers]
    x, _, _ = make_batch(examples, config, np.random.default_rng([5, 0xB47C]))  # the batch recompute draws
    before = np.asarray(network(x, training=False))
    assert recompute_batchnorm(network, examples, config, batches=1, seed=5) == len(layers) > 0
    assert [layer.momentum for layer in layers] == momenta  # put back
    after = np.asarray(network(x, training=False))
    np.testing.assert_allclose(after, np.asarray(network(x, training=True)), atol=1e-4)
    assert np.abs(after - before).max() > 1e-3  # the untouched statistics (0 and 1) gave something else
    # More batches: the mean of their statistics, not the last batch's.
    recompute_batchnorm(network, examples, config, batches=6, seed=5)
    mean_of_six = np.asarray(layers[0].moving_mean)
    recompute_batchnorm(network, examples, config, batches=1, seed=5)
    assert not np.allclose(mean_of_six, np.asarray(layers[0].moving_mean))


def test_training_with_average_last_ships_the_mean_of_the_last_epochs(tmp_path):
    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    checkpoints = tmp_path / "ck"
    config = TrainConfig(network="unet", base_filters=2, data=str(data), crop=48, batch_size=1, steps_per_epoch=2,
                         epochs=3, val_images=1, patience=100, average_last=2)
    card_path = train(config, tmp_path / "models" / "avg", checkpoints)
    card = json.loads(card_path.read_text())
    assert card["training"]["average"]["epochs"] == [2, 3]
    assert card["training"]["weights"].startswith("mean of the weights of epochs 2-3")
    state = json.loads((checkpoints / checkpoint_files.STATE).read_text())
    assert card["validation"]["during_training"] == state["average"]["validation"]
    # The shipped kernels are the mean of epochs 2 and 3 (batch-norm statistics were measured anew).
    shipped, epochs = build_unet(2), [build_unet(2), build_unet(2)]
    shipped.load_weights(card_path.with_name(card["weights"]))
    for network, epoch in zip(epochs, (2, 3)):
        network.load_weights(checkpoint_files.epoch_weights(checkpoints, epoch))
    kernels = [i for i, w in enumerate(shipped.weights) if "kernel" in w.path]
    assert kernels
    for i in kernels:
        np.testing.assert_allclose(np.asarray(shipped.weights[i]),
                                   (np.asarray(epochs[0].weights[i]) + np.asarray(epochs[1].weights[i])) / 2, atol=1e-6)
    cards.clear_cache()
    assert len(cards.load(card_path).networks) == 1


def test_train_command_refuses_bad_averaging_before_training(tmp_path, capsys):
    from nucleiseg.train import main

    for extra, message in ((["--average-last", "-1"], "--average-last -1"),
                           (["--average-last", "3", "--snapshots", "2"], "--average-last and --snapshots")):
        with pytest.raises(SystemExit) as stopped:
            main(["unet", "--out", str(tmp_path / "model"), *extra])
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "model.json").exists()


def test_a_mean_that_scores_below_the_best_epoch_is_not_shipped(tmp_path):
    """The mean is shipped only when validation says it is at least as good as the best epoch."""
    from nucleiseg.training.model_card import export

    synthetic.generate(tmp_path / "data", n=4, size=48)
    config = TrainConfig(network="unet", base_filters=2, data=str(tmp_path / "data"), crop=48, steps_per_epoch=2,
                         average_last=2)
    checkpoints = tmp_path / "ck"
    checkpoints.mkdir()
    best, mean = build_unet(2), build_unet(2)
    best.set_weights(_perturbed(best, 1))
    mean.set_weights(_perturbed(mean, 2))
    best.save_weights(checkpoints / checkpoint_files.BEST)
    mean.save_weights(checkpoints / checkpoint_files.AVERAGE)
    history = [{"epoch": e, "steps": 2 * e, "f1_mean": f} for e, f in ((1, 0.5), (2, 0.7), (3, 0.6))]
    average = {"epochs": [2, 3], "steps": [4, 6], "batchnorm_batches": 100}

    def shipped(average_f1):
        state = {"epoch": 3, "best_f1": 0.7, "best_epoch": 1, "history": history, "seconds": 10.0,
                 "average": {**average, "validation": {"f1_mean": average_f1}}}
        card_path = export(config, checkpoints, tmp_path / f"model-{average_f1}", state)
        card = json.loads(card_path.read_text())
        network = build_unet(2)
        network.load_weights(card_path.with_name(card["weights"]))
        return card, network

    card, network = shipped(0.65)
    np.testing.assert_array_equal(network.get_weights()[0], best.get_weights()[0])
    assert card["validation"]["during_training"]["f1_mean"] == 0.7
    assert card["training"]["average"]["shipped"] is False
    assert card["training"]["weights"].startswith("epoch 2, the best on validation")
    card, network = shipped(0.71)
    np.testing.assert_array_equal(network.get_weights()[0], mean.get_weights()[0])
    assert card["validation"]["during_training"]["f1_mean"] == 0.71
    assert card["training"]["weights"].startswith("mean of the weights of epochs 2-3")


def test_a_finished_run_run_again_exports_without_training(tmp_path):
    """After an early stop or a spent budget, the same command writes the card again and trains
    nothing; a larger budget carries the run on."""
    data = tmp_path / "data"
    synthetic.generate(data, n=4, size=48)
    checkpoints = tmp_path / "ck"
    config = TrainConfig(network="unet", base_filters=2, data=str(data), crop=48, batch_size=1, steps_per_epoch=2,
                         epochs=5, val_images=1, patience=100, max_minutes=1e-6)
    first = json.loads(train(config, tmp_path / "m", checkpoints).read_text())
    assert [h["epoch"] for h in first["history"]] == [1]
    again = json.loads(train(config, tmp_path / "m", checkpoints).read_text())
    assert again["history"] == first["history"]
    assert "wall-clock budget" in (checkpoints / "train.log").read_text()
    longer = TrainConfig(**{**config.__dict__, "max_minutes": 0.0, "epochs": 2})
    assert [h["epoch"] for h in json.loads(train(longer, tmp_path / "m", checkpoints).read_text())["history"]] == [1, 2]
