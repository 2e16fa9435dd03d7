"""Tar-shard datasets: urls, the shard writer, the per-rank and per-worker split, bad samples, training."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from clsctl.data.datasets import build_dataset
from clsctl.data.loaders import build_loader
from clsctl.data.shards import ShardDataset, deal_to_ranks, expand_braces, split_name
from clsctl.data.transforms import build_pipeline
from clsctl.data.write_shards import parse_size, write_shards
from clsctl.errors import ClsctlError, DataError
from clsctl.recipe import schema as S

from helpers import write_image_folder
from shard_helpers import write_shard_split


def test_brace_patterns_and_names() -> None:
    assert expand_braces("a-{000..002}.tar") == ["a-000.tar", "a-001.tar", "a-002.tar"]
    assert expand_braces("{x,y}/s{8..10}.tar") == ["x/s8.tar", "x/s9.tar", "x/s10.tar", "y/s8.tar", "y/s9.tar",
                                                   "y/s10.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]
    assert split_name("dir/00012.seg.png") == ("dir/00012", "seg.png")
    assert split_name("00012.JPG") == ("00012", "jpg")


def test_sizes() -> None:
    assert parse_size("1GB") == 10**9 and parse_size("256MiB") == 256 * 2**20 and parse_size("4096") == 4096
    assert parse_size("1.5k") == 1500
    with pytest.raises(ClsctlError, match="not a size"):
        parse_size("lots")


def test_ranks_get_balanced_shards() -> None:
    assert deal_to_ranks([5, 5, 5, 5], 4, 2) == [[0, 2], [1, 3]]
    assert deal_to_ranks([10, 1, 1, 8], 4, 2) == [[0], [1, 2, 3]]  # 10 vs 10
    assert deal_to_ranks(None, 5, 2) == [[0, 2, 4], [1, 3]]


def test_writer_is_deterministic_and_keeps_the_size(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "img", per_class=6)
    first = write_shards(images, tmp_path / "a", shard_size=16_000, seed=3)
    second = write_shards(images, tmp_path / "b", shard_size=16_000, seed=3)
    assert first.samples == 18 and len(first.shards) > 1
    assert [p.read_bytes() for p in first.shards] == [p.read_bytes() for p in second.shards]
    assert all(p.stat().st_size <= 16_000 + 10_240 for p in first.shards)  # tar pads to 10 KiB records
    index = json.loads((tmp_path / "a" / "index.json").read_text())
    assert sum(e["samples"] for e in index["shards"].values()) == 18
    assert (tmp_path / "a" / "classes.txt").read_text().split() == ["blue", "green", "red"]
    with tarfile.open(first.shards[0]) as tar:
        names = tar.getnames()
        label = int(tar.extractfile(names[1]).read())
    assert names[0].endswith(".png") and names[1] == names[0].replace(".png", ".cls") and 0 <= label < 3
    assert first.pattern.endswith(f"shard-{{000000..{len(first.shards) - 1:06d}}}.tar")


def _dataset(shards: list[Path], **options: object) -> ShardDataset:
    config = S.WebDatasetShards(type="webdataset", urls=[str(p) for p in shards], **options)
    return build_dataset(config, build_pipeline([], [0.5] * 3, [0.25] * 3))


def _all_ids(dataset: ShardDataset) -> list[int]:
    return sorted((shard << 32) | position for shard, count in enumerate(dataset.counts) for position in range(count))


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # 2: worker processes
def test_every_sample_once_per_epoch_over_ranks_and_workers(tmp_path: Path, workers: int) -> None:
    shards = write_shard_split(tmp_path, "train", per_class=8, per_shard=3)  # 24 samples in 8 shards of 3
    dataset = _dataset(shards, shuffle_buffer=5)
    assert dataset.counts == [3] * 8
    loader_config = S.LoaderConfig(batch_size=4, num_workers=workers)
    orders = {}
    for epoch in (0, 1):
        seen, lengths = [], []
        for rank in (0, 1):
            loader = build_loader(dataset, loader_config, train=True, seed=7, num_replicas=2, rank=rank)
            loader.sampler.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == len(loader) == 3 and all(len(y) == 4 for _, y in batches)
            lengths.append(len(loader.last_ids))
            seen += loader.last_ids
            orders[(epoch, rank)] = list(loader.last_ids)
        assert sorted(seen) == _all_ids(dataset) and lengths == [12, 12]
    assert orders[(0, 0)] != orders[(1, 0)]  # a new order every epoch
    again = build_loader(dataset, loader_config, train=True, seed=7, num_replicas=2, rank=0)
    again.sampler.set_epoch(1)
    first = [y for _, y in again]
    assert again.last_ids == orders[(1, 0)]  # ... and the same order for the same (seed, epoch)
    again.sampler.set_epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(first, [y for _, y in again]))


def test_uneven_ranks_pad_to_the_same_length(tmp_path: Path) -> None:
    shards = write_shard_split(tmp_path, "train", per_class=7, per_shard=4)  # 21 samples
    dataset = _dataset(shards)
    config = S.LoaderConfig(batch_size=4, num_workers=0)
    per_rank = []
    for rank in (0, 1):
        loader = build_loader(dataset, config, train=True, num_replicas=2, rank=rank)
        loader.sampler.set_epoch(0)
        list(loader)
        per_rank.append(loader.last_ids)
    assert len(per_rank[0]) == len(per_rank[1]) == max(dataset.rank_count(r) for r in (0, 1))
    assert set(per_rank[0]) | set(per_rank[1]) == set(_all_ids(dataset))
    assert not set(per_rank[0]) & set(per_rank[1])  # a shard is read by one rank only; repeats stay in it


def test_resume_inside_an_epoch_continues_the_same_stream(tmp_path: Path) -> None:
    shards = write_shard_split(tmp_path, "train", per_class=4, per_shard=4)
    dataset = _dataset(shards)
    config = S.LoaderConfig(batch_size=4, num_workers=0)
    loader = build_loader(dataset, config, train=True, seed=1)
    loader.sampler.set_epoch(2)
    whole = [x for x, _ in loader]
    ids = list(loader.last_ids)
    loader.sampler.set_epoch(2, start=4)
    assert len(loader) == len(whole) - 1
    rest = [x for x, _ in loader]
    assert loader.last_ids == ids[4:] and all(torch.equal(a, b) for a, b in zip(rest, whole[1:]))


def _corrupt_copy(shard: Path, target: Path) -> str:
    """Copy ``shard`` with its first image replaced by junk bytes; returns that sample's key."""
    with tarfile.open(shard) as source, tarfile.open(target, "w") as out:
        members = source.getmembers()
        for member in members:
            data = source.extractfile(member).read()
            if member is members[0]:
                data = b"this is not a png"
                member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return members[0].name.partition(".")[0]


def test_bad_samples_are_skipped_and_counted_or_fail(tmp_path: Path) -> None:
    shards = write_shard_split(tmp_path, "val", per_class=2, per_shard=3)
    bad_shard = shards[0].parent / "bad.tar"  # beside classes.txt
    key = _corrupt_copy(shards[0], bad_shard)
    bad = [bad_shard, *shards[1:]]
    dataset = _dataset(bad)
    loader = build_loader(dataset, S.LoaderConfig(batch_size=2, num_workers=0), train=False)
    labels = torch.cat([y for _, y in loader])
    assert len(labels) == 5 and dataset.bad_image_count == 1
    assert key not in {name.rpartition(":")[2] for _, _, name in dataset.iter_samples()}
    strict = build_dataset(S.WebDatasetShards(type="webdataset", urls=[str(p) for p in bad]), None,
                           on_bad_image="fail")
    with pytest.raises(DataError, match=f"bad.tar:{key}"):
        list(strict.iter_samples())


def test_pipe_urls_and_epoch_size(tmp_path: Path) -> None:
    shards = write_shard_split(tmp_path, "train", per_class=4, per_shard=4)
    urls = [f"pipe:cat {p}" for p in shards]
    classes = str(shards[0].parent / "classes.txt")
    no_size = build_dataset(S.WebDatasetShards(type="webdataset", urls=urls, classes=classes), None)
    assert no_size.counts is None
    with pytest.raises(DataError, match="needs data.train.epoch_size"):
        build_loader(no_size, S.LoaderConfig(num_workers=0), train=True)
    config = S.WebDatasetShards(type="webdataset", urls=urls, classes=classes, epoch_size=20)
    dataset = build_dataset(config, build_pipeline([], [0.5] * 3, [0.25] * 3))
    loader = build_loader(dataset, S.LoaderConfig(batch_size=8, num_workers=0), train=True)
    assert [len(y) for _, y in loader] == [8, 8, 4]  # 12 samples, read again to make the epoch's 20
    assert len(set(loader.last_ids)) == 12
    with pytest.raises(DataError, match="need data.<split>.classes"):
        build_dataset(S.WebDatasetShards(type="webdataset", urls=urls), None)
    with pytest.raises(DataError, match="shard not found"):
        build_dataset(S.WebDatasetShards(type="webdataset", urls=str(tmp_path / "none-{0..1}.tar")), None)


def test_http_urls(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    shards = write_shard_split(tmp_path, "val", per_class=2, per_shard=3)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shards[0].parent))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # loopback only
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/{p.name}" for p in shards]
        config = S.WebDatasetShards(type="webdataset", urls=urls, classes=["blue", "green", "red"])
        remote = [label for _, label, _ in build_dataset(config, None).iter_samples()]
        with pytest.raises(DataError, match="cannot read shard"):
            list(build_dataset(S.WebDatasetShards(type="webdataset", urls=f"{base}/missing.tar",
                                                  classes=["a"]), None, on_bad_image="fail").iter_samples())
    finally:
        server.shutdown()
        server.server_close()
    local = [label for _, label, _ in _dataset(shards).iter_samples()]
    assert remote == local and len(local) == 6


@pytest.mark.slow  # three tiny trainings
def test_resume_from_an_epoch_checkpoint_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    from clsctl.readers import read_checkpoint
    from clsctl.engine.loop import train
    from clsctl.recipe import validate_recipe
    from helpers import tiny_recipe_dict

    shards = write_shard_split(tmp_path, "train", per_class=4, per_shard=4)
    data = tiny_recipe_dict(tmp_path, tmp_path / "full", epochs=2, keep_checkpoints=-1)
    data["data"]["train"] = {"type": "webdataset", "urls": [str(p) for p in shards], "shuffle_buffer": 4,
                             "pipeline": data["data"]["train"]["pipeline"]}
    data["data"].pop("val")
    train(validate_recipe(data), device="cpu", show_progress=False)
    resumed = tmp_path / "resumed"
    train(validate_recipe(data), resumed, resume=tmp_path / "full" / "epoch_1.pt", device="cpu",
          show_progress=False)
    full, again = read_checkpoint(tmp_path / "full" / "last.pt"), read_checkpoint(resumed / "last.pt")
    assert again["epoch"] == full["epoch"] == 2
    assert all(torch.equal(full["model"][k], again["model"][k]) for k in full["model"])


def test_wrappers_refuse_streams(tmp_path: Path) -> None:
    shards = write_shard_split(tmp_path, "train", per_class=2, per_shard=6)
    config = S.RepeatDataset(type="repeat", times=2,
                             dataset=S.WebDatasetShards(type="webdataset", urls=str(shards[0])))
    with pytest.raises(DataError, match="cannot wrap a webdataset stream"):
        build_dataset(config, None)


@pytest.mark.slow  # two processes importing torch, two epochs
def test_two_gloo_processes_see_every_sample_once_per_epoch(tmp_path: Path) -> None:
    import yaml

    from clsctl.engine import distributed as D
    from helpers import tiny_recipe_dict

    train_shards = write_shard_split(tmp_path, "train", per_class=8, per_shard=3, seed=1)  # 24 in 8 shards
    val_shards = write_shard_split(tmp_path, "val", per_class=3, per_shard=2, seed=2)  # 9 in 5 shards
    data = tiny_recipe_dict(tmp_path, tmp_path / "run", epochs=2)
    data["data"]["train"] = {"type": "webdataset", "urls": [str(p) for p in train_shards], "shuffle_buffer": 4,
                             "pipeline": data["data"]["train"]["pipeline"]}
    data["data"]["val"] = {"type": "webdataset", "urls": [str(p) for p in val_shards]}
    data["data"]["loader"] = {"batch_size": 4, "num_workers": 2}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
    tests = Path(__file__).resolve().parent
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(D._free_port()),
                "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])})
    log = tmp_path / "ids.jsonl"
    command = [sys.executable, str(tests / "shard_helpers.py"), str(recipe), str(log)]
    procs = [subprocess.Popen(command, env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs

    records = [json.loads(line) for rank in (0, 1) for line in
               log.with_suffix(f".{rank}.jsonl").read_text().splitlines()]
    train_ids = _all_ids(_dataset(train_shards))
    for epoch in (0, 1):
        passes = [r for r in records if r["train"] and r["epoch"] == epoch]
        assert sorted(r["rank"] for r in passes) == [0, 1]
        assert sorted(i for r in passes for i in r["ids"]) == train_ids  # each sample once in the epoch
    val_passes = [r for r in records if not r["train"]]
    assert len(val_passes) == 4  # a validation per epoch on each rank
    assert sorted(i for r in val_passes[:1] + [v for v in val_passes if v["rank"] != val_passes[0]["rank"]][:1]
                  for i in r["ids"]) == _all_ids(_dataset(val_shards))
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics if m["mode"] == "val"] == [1, 2]


def test_evaluate_on_shards_equals_the_image_folder(tmp_path: Path) -> None:
    from clsctl.engine.evaluate import evaluate
    from deploy_helpers import make_checkpoint

    checkpoint = make_checkpoint(tmp_path, "test_resnet")  # its recipe reads tmp_path/data/val
    images = write_image_folder(tmp_path / "data" / "val", per_class=3, seed=2)
    shards = write_shards(images, tmp_path / "shards", shard_size=12_000).shards
    folder = evaluate(checkpoint, split="val", device="cpu", show_progress=False)
    urls = ", ".join(str(p) for p in shards)
    streamed = evaluate(checkpoint, split="val", device="cpu", show_progress=False,
                        overrides=[f"data.val={{type: webdataset, urls: [{urls}]}}"])
    # other batches, other float sums: equal up to rounding
    assert streamed.metrics == pytest.approx(folder.metrics, rel=1e-5)
    assert streamed.num_samples == folder.num_samples == 9
    with pytest.raises(ClsctlError, match="--out lists predictions per image file"):
        evaluate(checkpoint, split="val", device="cpu", show_progress=False, out=tmp_path / "p.json",
                 overrides=[f"data.val={{type: webdataset, urls: [{urls}]}}"])
