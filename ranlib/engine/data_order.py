"""Data order and augmentation that a resumed run reproduces exactly, on one process or several.

``ResumableSampler`` yields ``(index, epoch)`` keys: the permutation of epoch ``e`` is drawn from
``seed + e`` (as ``DistributedSampler`` does), shared by all processes, each taking every ``world``-th index;
``set_epoch(e, start)`` skips the first ``start`` keys, so a run resumed mid-epoch continues with the same
batches. ``AugmentedDataset`` seeds the augmentation of each sample from ``(seed, epoch, index)``, so the crops
and flips do not depend on which worker or process loads the sample, nor on how often training was resumed.
``build_loaders`` makes ``fit``'s loaders from them.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler, Subset

from ranlib.data import make_loader, train_transforms, val_transforms, voc
from ranlib.engine import distributed
from ranlib.engine.config import TrainConfig


class ResumableSampler(Sampler):
    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1):
        self.size, self.shuffle, self.seed, self.rank, self.world = size, shuffle, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields epoch ``epoch``'s keys for this rank from position ``start`` on."""
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        total = math.ceil(self.size / self.world) * self.world
        order = torch.cat([order, order[: total - self.size]])  # pad so every rank gets as many
        return order[self.rank:total:self.world].tolist()

    def __iter__(self):
        return iter([(i, self.epoch) for i in self._indices()[self.start:]])

    def __len__(self) -> int:
        return math.ceil(self.size / self.world) - self.start


class AugmentedDataset(Dataset):
    """``dataset[(index, epoch)]`` = ``transforms(*base[index])`` under RNGs seeded by (seed, epoch, index)."""

    def __init__(self, base: Dataset, transforms, seed: int = 0):
        self.base, self.transforms, self.seed = base, transforms, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        image, mask = self.base[index]
        sample_seed = hash((self.seed, epoch, index)) % (2**63)  # ints hash to themselves: stable across runs
        python_state = random.getstate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed)
            random.seed(sample_seed)
            image, mask = self.transforms(image, mask)
        random.setstate(python_state)
        return image, mask


class ResumableBatches:
    """Endless micro-batches from ``loader``, epoch after epoch, starting at ``(epoch, position)``.

    ``position`` counts the micro-batches taken in the current epoch. Both go into every checkpoint, and a run
    resumed from them continues with the batches the uninterrupted run would have drawn. ``sampler`` is the
    loader's ``ResumableSampler``: when an epoch ends, the next one starts from its first batch.
    """

    def __init__(self, loader, sampler: ResumableSampler, epoch: int = 0, position: int = 0):
        self.loader, self.sampler, self.epoch, self.position = loader, sampler, epoch, position
        self._batches = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._batches is None:  # first batch, fresh or resumed mid-epoch
            self.sampler.set_epoch(self.epoch, self.position * self.loader.batch_size)
            self._batches = iter(self.loader)
        batch = next(self._batches, None)
        if batch is None:  # epoch finished
            self.epoch, self.position = self.epoch + 1, 0
            self.sampler.set_epoch(self.epoch, 0)
            self._batches = iter(self.loader)
            batch = next(self._batches)
        self.position += 1
        return batch


def build_loaders(config: TrainConfig, root: Path):
    """The training loader (augmented, in the resumable order of ``ResumableSampler``, ``config.batch_size``
    split into micro-batches over processes and accumulation steps), its sampler, the validation set, and this
    process's share of the validation set as a loader."""
    rank, world = distributed.rank(), distributed.world_size()
    train_set = AugmentedDataset(voc(root, config.train_split), train_transforms(config.crop_size, config.scale_range),
                                 config.seed)
    val_set = voc(root, config.val_split, val_transforms())
    sampler = ResumableSampler(len(train_set), shuffle=True, seed=config.seed, rank=rank, world=world)
    micro_batch = config.batch_size // (world * config.grad_accum)
    # Loaders draw their workers' base seed from their own generator, not the global RNG (which dropout uses),
    # so that starting a loader again on resume leaves the global RNG where the uninterrupted run has it.
    loader = make_loader(train_set, micro_batch, shuffle=False, drop_last=True, sampler=sampler,
                         num_workers=config.num_workers, generator=torch.Generator().manual_seed(config.seed))
    val_shard = Subset(val_set, range(rank, len(val_set), world))  # each process evaluates its share
    val_loader = make_loader(val_shard, config.eval_batch_size, shuffle=False, num_workers=config.num_workers,
                             generator=torch.Generator().manual_seed(config.seed))
    return loader, sampler, val_set, val_loader
