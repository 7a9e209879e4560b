"""Speed of the two disentanglement methods, domain intersection/difference ("did") and
mask-based content transfer ("mbu"): iterations per second and peak memory of our
LightningModule under the Trainer against a plain PyTorch loop of the same networks, losses
and updates (the official recipes: 128x128, batch 32 A + 32 B, 6-layer networks).

    python -m benchmarks.disentangle_speed [--methods did mbu] [--size 128] [--batch 32] [--iters 12] [--device cpu]

Both variants read the same stream of in-memory images. Each runs in its own process so
that peak memory is its own; the rate is the median over the iterations after a third of
warm-up, each measured from the end of the previous one (data and loop overhead included).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from benchmarks.child import measure_in_child, peak_memory_mib
from benchmarks.plain_singan import timed
from benchmarks.singan_speed import IterationClock, device_name
from datamodules.loaders import BatchStream, StreamedTrainingData
from lightning_modules.content_transfer import MaskContentTransfer
from lightning_modules.domain_intersection import DomainIntersectionDifference
from lightning_modules.networks.disentangle import CodeCritic, IntersectionAutoencoder, IntersectionDifferenceLoss
from lightning_modules.networks.mask_transfer import MaskTransferLoss, MaskTransferNetworks


class RandomDomains(StreamedTrainingData):
    """Batches {"a", "b"} [batch, 3, size, size] drawn from a fixed pool of random images."""

    def __init__(self, size: int, batch_size: int, batch_seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        pool = torch.Generator().manual_seed(1)
        self.images = {d: torch.rand(4 * batch_size, 3, size, size, generator=pool) * 2 - 1 for d in "ab"}

    def training_batch(self, rng: torch.Generator) -> dict[str, torch.Tensor]:
        count = self.hparams.batch_size
        return {d: pool[torch.randperm(len(pool), generator=rng)[:count]] for d, pool in self.images.items()}


def depth_for(size: int) -> int:
    """Stride-2 layers down to a 2x2 code, as the official 6 layers at 128."""
    return size.bit_length() - 2


MODULES = {"did": DomainIntersectionDifference, "mbu": MaskContentTransfer}


def train_lightning(
    method: str, data: RandomDomains, iters: int, device: torch.device, now: Callable[[], float],
    precision: str = "32-true",
) -> list[float]:  # fmt: skip
    clock = IterationClock(now)
    trainer = Trainer(
        accelerator=device.type, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, callbacks=[clock],
        precision=precision,
    )  # fmt: skip
    size = data.hparams.size
    trainer.fit(MODULES[method](image_size=size, depth=depth_for(size), iterations=iters), data)
    return [seconds for _, seconds in clock.times]


def clipped_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 5.0)
    optimizer.step()


def plain_did(size: int, device: torch.device) -> Callable[[dict[str, torch.Tensor]], None]:
    """The official `train/train.py` step written directly: autoencoder step, then the critic step on fresh codes."""
    autoencoder = IntersectionAutoencoder(depth=depth_for(size)).to(device)
    critic = CodeCritic(462 * (size // 2 ** depth_for(size)) ** 2).to(device)
    loss = IntersectionDifferenceLoss(
        rec_weight=1.0, zero_weight=1.0, confusion_weight=0.001, confusion_target="official"
    )
    autoencoder_optimizer = torch.optim.Adam(autoencoder.parameters(), lr=2e-4, betas=(0.5, 0.999))
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(images: dict[str, torch.Tensor]) -> None:
        codes = {d: autoencoder.encode(x) for d, x in images.items()}
        reconstructions = {
            "a": autoencoder.decode(codes["a"].common, codes["a"].a, None),
            "b": autoencoder.decode(codes["b"].common, None, codes["b"].b),
        }
        critic.requires_grad_(False)
        terms = loss.autoencoder(images, reconstructions, codes, critic)
        critic.requires_grad_(True)
        clipped_step(autoencoder_optimizer, terms["loss"])
        with torch.no_grad():
            common = {d: autoencoder.common_encoder(x) for d, x in images.items()}
        clipped_step(critic_optimizer, loss.critic(critic(common["a"]), critic(common["b"])))

    return step


def plain_mbu(size: int, device: torch.device) -> Callable[[dict[str, torch.Tensor]], None]:
    """The official `mask_train.py` step written directly: autoencoder step, then the critic step on fresh codes."""
    networks = MaskTransferNetworks(depth=depth_for(size)).to(device)
    critic = CodeCritic(487 * (size // 2 ** depth_for(size)) ** 2).to(device)
    loss = MaskTransferLoss(7.0, 5.0, 0.7, 0.7, 0.0, 0.001, 0.005, "official")  # the official eyewear weights
    autoencoder_optimizer = torch.optim.Adam(networks.parameters(), lr=2e-4, betas=(0.5, 0.999))
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(images: dict[str, torch.Tensor]) -> None:
        critic.requires_grad_(False)
        terms = loss.autoencoder(networks, critic, images["a"], images["b"])
        critic.requires_grad_(True)
        clipped_step(autoencoder_optimizer, terms["loss"])
        with torch.no_grad():
            common_a, common_b = networks.common_encoder(images["a"]), networks.common_encoder(images["b"])
        clipped_step(critic_optimizer, loss.critic(critic(common_b), critic(common_a)))

    return step


def train_plain(
    method: str, data: RandomDomains, iters: int, device: torch.device, now: Callable[[], float]
) -> list[float]:
    step = {"did": plain_did, "mbu": plain_mbu}[method](data.hparams.size, device)
    loader = DataLoader(BatchStream(data.training_batch, seed=0, start=0), batch_size=None)
    times, last = [], now()
    for iteration, batch in enumerate(loader):
        if iteration == iters:
            break
        step({d: x.to(device) for d, x in batch.items()})
        end = now()
        times.append(end - last)
        last = end
    return times


def run_variant(method: str, variant: str, size: int, batch: int, iters: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    data = RandomDomains(size, batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train = train_lightning if variant == "lightning" else train_plain
    seconds = train(method, data, iters, device, timed(device))[iters // 3 :]
    return {
        "it_per_s": 1 / statistics.median(seconds),
        **peak_memory_mib(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", choices=tuple(MODULES), default=list(MODULES))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=12)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variant", choices=("lightning", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.variant:  # child process: one measurement, as JSON on the last line
        result = run_variant(args.methods[0], args.variant, args.size, args.batch, args.iters, device)
        print(json.dumps(result))
        return
    setting = f"{args.size}x{args.size}, batch {args.batch}+{args.batch}"
    print(f"disentanglement methods on {device_name(device)}: {setting}\n")
    print("| method | loop | it/s | peak memory (MiB) | time per iteration, ours / plain |")
    print("|---|---|---|---|---|")
    for method in args.methods:
        results = {}
        for variant in ("plain", "lightning"):
            results[variant] = measure_in_child(
                "benchmarks.disentangle_speed", "--methods", method, "--variant", variant, "--size", args.size,
                "--batch", args.batch, "--iters", args.iters, "--device", args.device,
            )  # fmt: skip
        ratio = results["plain"]["it_per_s"] / results["lightning"]["it_per_s"]
        for variant, result in results.items():
            memory = result["peak_gpu_mib"] if result["peak_gpu_mib"] is not None else result["peak_rss_mib"]
            kind = "GPU" if result["peak_gpu_mib"] is not None else "RSS"
            cell = f"{ratio:.3f} (target <= 1.05)" if variant == "lightning" else ""
            print(f"| {method} | {variant} | {result['it_per_s']:.2f} | {memory:.0f} ({kind}) | {cell} |")


if __name__ == "__main__":
    main()
