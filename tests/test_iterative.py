"""The base of the methods that count their own iterations: named random streams saved with the
counter under one checkpoint key, checkpoints of the earlier formats, and freezing a player."""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules import MaskContentTransfer
from lightning_modules.iterative import CHECKPOINT_KEY, IterativeModule


class Counter(IterativeModule):
    def __init__(self, iterations: int = 4, seed: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.critic = nn.Linear(2, 1)


def saved(module: IterativeModule) -> dict:
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


def restored(checkpoint: dict) -> Counter:
    module = Counter()
    module.on_load_checkpoint(checkpoint)
    return module


def test_streams_are_seeded_by_name_settings_and_continue_after_a_checkpoint():
    module = Counter()
    module.iteration = 7
    first = torch.rand(3, generator=module.rng("noise"))
    assert torch.equal(first, torch.rand(3, generator=torch.Generator().manual_seed(3)))
    torch.rand(5, generator=module.rng("pool", per_process=False))
    resumed = restored(saved(module))
    assert resumed.iteration == 7
    for name in ("noise", "pool"):
        assert torch.equal(torch.rand(4, generator=resumed.rng(name)), torch.rand(4, generator=module.rng(name)))


def test_each_process_continues_its_own_stream(monkeypatch):
    ranks = []
    for rank in (0, 1):
        monkeypatch.setattr(Counter, "global_rank", property(lambda self, rank=rank: rank))
        module = Counter()
        torch.rand(2, generator=module.rng("noise"))
        ranks.append(module)
    states = torch.cat([saved(module)[CHECKPOINT_KEY]["rng"]["noise"]["state"] for module in ranks])  # [2, bytes]
    assert not torch.equal(states[0], states[1])  # seeded with the rank
    checkpoint = {CHECKPOINT_KEY: {"iteration": 2, "rng": {"noise": {"state": states, "device_type": "cpu"}}}}
    for rank, module in enumerate(ranks):
        monkeypatch.setattr(Counter, "global_rank", property(lambda self, rank=rank: rank))
        expected = torch.rand(4, generator=module.rng("noise"))
        assert torch.equal(torch.rand(4, generator=restored(checkpoint).rng("noise")), expected)


def test_a_restored_stream_not_drawn_from_yet_is_saved_again():
    module = Counter()
    torch.rand(2, generator=module.rng("noise"))
    twice = restored(saved(restored(saved(module))))
    assert torch.equal(torch.rand(3, generator=twice.rng("noise")), torch.rand(3, generator=module.rng("noise")))


def test_checkpoints_of_the_earlier_formats_resume_their_streams():
    module = Counter()
    noise, pool = module.rng("noise"), module.rng("pool", per_process=False)
    torch.rand(2, generator=noise), torch.rand(9, generator=pool)
    pyramid = {"pyramid_progress": {"iteration": 13, "noise_rng": {"state": noise.get_state(), "device_type": "cpu"}}}
    one_shot = {CHECKPOINT_KEY: {"iteration": 5}, "one_shot_progress": {"rng": pool.get_state(), "pool": []}}
    from_pyramid, from_one_shot = restored(pyramid), restored(one_shot)
    assert (from_pyramid.iteration, from_one_shot.iteration) == (13, 5)
    assert torch.equal(torch.rand(3, generator=from_pyramid.rng("noise")), torch.rand(3, generator=noise))
    assert torch.equal(torch.rand(3, generator=from_one_shot.rng("pool")), torch.rand(3, generator=pool))


def test_frozen_players_get_no_gradients_and_keep_their_own_settings():
    module = Counter()
    module.critic.bias.requires_grad_(False)  # e.g. a frozen part of the player
    with module.frozen(module.critic):
        assert not any(parameter.requires_grad for parameter in module.critic.parameters())
    assert module.critic.weight.requires_grad and not module.critic.bias.requires_grad


def test_a_content_transfer_checkpoint_of_the_earlier_layout_loads():
    """Its autoencoder was called `networks` before it took the sibling method's name."""
    small = {"image_size": 32, "depth": 4, "code_channels": 32, "separate_channels": 4}
    trained, fresh = MaskContentTransfer(**small), MaskContentTransfer(**small)
    state = {key.replace("autoencoder.", "networks.", 1): value for key, value in trained.state_dict().items()}
    checkpoint = {"state_dict": state, CHECKPOINT_KEY: {"iteration": 2}}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert all(torch.equal(value, fresh.state_dict()[key]) for key, value in trained.state_dict().items())
