"""Mixup, CutMix, ResizeMix, augment choice and the batch mixer the training loop uses."""

import io

import pytest
import torch
import torch.nn.functional as F

from clsctl.data.mixing import (BatchMixer, apply_batch_augment, choose_augment, cutmix, mixup, resizemix,
                                resolve_probs, to_soft_targets)
from clsctl.recipe import schema as S


def _batch(n: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g), torch.arange(n) % 4


def test_mixup_blends_images_and_targets_by_lam() -> None:
    images, labels = _batch()
    soft = to_soft_targets(labels, 4)
    mixed, targets, lam, perm = mixup(images, soft, 0.8, torch.Generator().manual_seed(1))
    assert 0 < lam < 1 and sorted(perm.tolist()) == list(range(6))
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images[perm])
    torch.testing.assert_close(targets, lam * soft + (1 - lam) * soft[perm])
    torch.testing.assert_close(targets.sum(1), torch.ones(6))


def _constant_batch(n: int = 6, size: int = 20) -> torch.Tensor:
    """Image i is filled with the value i + 1, so every pixel tells which image it came from."""
    return (torch.arange(n, dtype=torch.float32) + 1)[:, None, None, None].expand(n, 3, size, size).clone()


def _share_from_partner(mixed: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Per sample: fraction of pixels whose value is the permuted partner's."""
    partner_value = (perm.float() + 1)[:, None, None]
    return ((mixed[:, 0] - partner_value).abs() < 1e-4).float().mean(dim=(1, 2))  # resizing is not exact


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_box_area_matches_lam(seed: int) -> None:
    images = _constant_batch()
    soft = to_soft_targets(torch.arange(6) % 4, 4)
    mixed, targets, lam, perm = cutmix(images, soft, 1.0, torch.Generator().manual_seed(seed))
    moved = perm != torch.arange(6)
    assert moved.any()
    torch.testing.assert_close(_share_from_partner(mixed, perm)[moved], torch.full((int(moved.sum()),), 1 - lam))
    # the rest of the image is untouched
    own = (mixed[:, 0] == (torch.arange(6).float() + 1)[:, None, None]).float().mean(dim=(1, 2))
    torch.testing.assert_close(own[moved], torch.full((int(moved.sum()),), lam))
    torch.testing.assert_close(targets, lam * soft + (1 - lam) * soft[perm])
    torch.testing.assert_close(targets.sum(1), torch.ones(6))


@pytest.mark.parametrize("seed", range(4))
def test_resizemix_pastes_a_resized_image(seed: int) -> None:
    images = _constant_batch(size=32)
    soft = to_soft_targets(torch.arange(6) % 4, 4)
    mixed, targets, lam, perm = resizemix(images, soft, 1.0, 0.1, 0.8, torch.Generator().manual_seed(seed))
    assert 0.1 <= lam <= 1.0
    moved = perm != torch.arange(6)
    torch.testing.assert_close(_share_from_partner(mixed, perm)[moved], torch.full((int(moved.sum()),), 1 - lam))
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    # the pasted content is the whole partner image shrunk, not a crop of it: a gradient image keeps its range
    ramp = torch.linspace(0, 1, 32)[None, None, None, :].expand(2, 3, 32, 32).clone()
    ramp[1] = 1 - ramp[1]
    out, _, lam2, perm2 = resizemix(ramp, torch.eye(2), 1.0, 0.1, 0.8, torch.Generator().manual_seed(2))
    assert lam2 < 1 and perm2.tolist() == [1, 0]  # this seed swaps the two images
    pasted = out[0, 0][out[0, 0] != ramp[0, 0]]
    assert pasted.max() - pasted.min() > 0.5


def test_resolve_probs_and_choice_frequencies() -> None:
    configs = [S.Mixup(type="mixup", prob=0.2), S.CutMix(type="cutmix"), S.ResizeMix(type="resizemix")]
    assert resolve_probs(configs) == pytest.approx([0.2, 0.4, 0.4])
    partial = [S.Mixup(type="mixup", prob=0.3), S.CutMix(type="cutmix", prob=0.3)]
    g = torch.Generator().manual_seed(0)
    picks = [choose_augment(partial, g) for _ in range(3000)]
    share_none = sum(p is None for p in picks) / len(picks)
    share_mixup = sum(isinstance(p, S.Mixup) for p in picks) / len(picks)
    assert share_none == pytest.approx(0.4, abs=0.04) and share_mixup == pytest.approx(0.3, abs=0.04)
    assert choose_augment([], g) is None


def test_apply_batch_augment_is_reproducible_and_sums_to_one() -> None:
    images, labels = _batch()
    configs = [S.Mixup(type="mixup", alpha=0.8), S.CutMix(type="cutmix", alpha=1.0)]
    a = apply_batch_augment(images, labels, 5, configs, torch.Generator().manual_seed(7))
    b = apply_batch_augment(images, labels, 5, configs, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert a[1].shape == (6, 5)
    torch.testing.assert_close(a[1].sum(1), torch.ones(6))
    untouched, soft = apply_batch_augment(images, labels, 5, [S.Mixup(type="mixup", prob=0.0)],
                                          torch.Generator().manual_seed(7))
    assert untouched is images and torch.equal(soft, F.one_hot(labels, 5).float())
    multi = torch.tensor([[1, 0, -1]] * 6)
    _, mixed_multi = apply_batch_augment(images, multi, 3, configs, torch.Generator().manual_seed(1))
    assert mixed_multi.min() >= 0 and torch.allclose(mixed_multi[:, 0], torch.ones(6))


def test_recipe_rejects_probabilities_over_one() -> None:
    with pytest.raises(ValueError, match="add up to"):
        S.DataConfig(batch_augments=[{"type": "mixup", "prob": 0.7}, {"type": "cutmix", "prob": 0.5}])
    with pytest.raises(ValueError, match="lam_min"):
        S.ResizeMix(type="resizemix", lam_min=0.9, lam_max=0.2)


def test_permutation_reaches_a_gpu_from_pinned_memory_without_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    from clsctl.data.mixing import permutation

    # No GPU here: record what the permutation goes through on its way to one.
    events = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a: events.append("pin") or self)
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: events.append((a, k)) or self)
    gpu = torch.device("cuda", 0)
    perm = permutation(6, torch.Generator().manual_seed(3), gpu)
    assert events == ["pin", ((gpu,), {"non_blocking": True})]
    assert perm.tolist() == torch.randperm(6, generator=torch.Generator().manual_seed(3)).tolist()
    monkeypatch.undo()
    cpu_perm = permutation(6, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert cpu_perm.tolist() == perm.tolist()  # the same draw on any device


def _mixes(mixer: BatchMixer, images: torch.Tensor, labels: torch.Tensor, n: int = 4) -> list[torch.Tensor]:
    return [torch.cat([x.flatten(), y.flatten()]) for x, y in (mixer(images, labels) for _ in range(n))]


def test_batch_mixer_draws_from_its_seed_epoch_and_rank() -> None:
    configs = [S.Mixup(type="mixup", alpha=1.0, prob=0.4), S.CutMix(type="cutmix", alpha=1.0, prob=0.4)]
    images, labels = _batch()
    mixer = BatchMixer(configs, 4, seed=3, rank=1)
    mixer.set_epoch(2)
    images_out, soft = mixer(images, labels)
    # The generator seed of the loop before the mixer was a class: runs mix as they did.
    generator = torch.Generator().manual_seed((3 * 1_000_003 + 2) * 1009 + 1)
    expected = apply_batch_augment(images, labels, 4, configs, generator)
    assert torch.equal(images_out, expected[0]) and torch.equal(soft, expected[1])
    mixer.set_epoch(2)  # set_epoch starts the epoch's draws over
    again = _mixes(mixer, images, labels)
    mixer.set_epoch(2)
    assert all(torch.equal(a, b) for a, b in zip(again, _mixes(mixer, images, labels)))
    for other in (BatchMixer(configs, 4, seed=3, rank=0), BatchMixer(configs, 4, seed=4, rank=1)):
        other.set_epoch(2)
        assert not all(torch.equal(a, b) for a, b in zip(again, _mixes(other, images, labels)))


def test_batch_mixer_state_dict_continues_where_it_was_saved() -> None:
    configs = [S.Mixup(type="mixup", alpha=0.4), S.ResizeMix(type="resizemix")]
    images, labels = _batch()
    mixer = BatchMixer(configs, 4, seed=0, rank=0)
    mixer.set_epoch(5)
    _mixes(mixer, images, labels, 3)  # some way into the epoch
    buffer = io.BytesIO()
    torch.save(mixer.state_dict(), buffer)  # as a checkpoint holds it
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    expected = _mixes(mixer, images, labels)
    for state in (saved, saved["generator"]):  # a checkpoint written before BatchMixer holds the bare state
        resumed = BatchMixer(configs, 4, seed=0, rank=0)
        resumed.set_epoch(0)
        resumed.load_state_dict(state)
        assert all(torch.equal(a, b) for a, b in zip(expected, _mixes(resumed, images, labels)))
