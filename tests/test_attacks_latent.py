"""In-distribution attacks on the random-generator fixture: on-manifold results, evaluation counts, adaptive vs Lagrangian."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from irob_bench.attacks.common import flat_norm
from irob_bench.attacks.config import AttackSuiteConfig, FlagsConfig, LatentAttackConfig, MinimalConfig
from irob_bench.attacks.latent import (
    LatentTask,
    evaluations_per_point,
    generator_jacobian,
    image_coordinates,
    latent_attack,
    survivor_runs,
)
from irob_bench.attacks.suite import run_attacks
from tests.factories import apgd_stages

N = 24
EPS = [0.5, 1.5]


class PrototypeCNN(nn.Module):
    """A small random CNN with a nearest-prototype head: logit k = -(feature distance to the closest class-k image).

    With the test images themselves as prototypes every test point is classified correctly, and an
    adversarial example has to move towards another class's image.
    """

    def __init__(self, prototypes: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            self.register_buffer("prototypes", self.features(prototypes))
        self.register_buffer("classes", nn.functional.one_hot(labels, 10).bool())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sq = (self.features(x)[:, None, :] - self.prototypes[None]).pow(2).sum(dim=2)
        dist = (sq + 1e-12).sqrt()[:, :, None].expand(-1, -1, 10)
        return -torch.where(self.classes[None], dist, torch.full_like(dist, 1e4)).amin(dim=1)


@pytest.fixture(scope="module")
def problem(random_mnist):
    gen = random_mnist.generator
    z, y = random_mnist.latents("test")[:N], random_mnist.labels("test")[:N]
    with torch.no_grad():
        x = gen(z, y)
        model = PrototypeCNN(x, y).eval().requires_grad_(False)
        correct = model(x).argmax(dim=1) == y
    assert correct.all(), "every test point is its own prototype"
    return LatentTask(model, gen, x, y, z, batch_size=8), correct


class CountingGenerator(nn.Module):
    """Wraps a generator and counts the rows it generates (one row = one generator evaluation of a point)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator, self.rows = generator, 0

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.rows += len(z)
        return self.generator(z, y)


ADAPTIVE = LatentAttackConfig(steps=40, lr=0.1)
LAGRANGIAN = LatentAttackConfig(method="lagrangian", outer_steps=3, inner_steps=40, lr=0.1)


def test_adaptive_success_is_on_manifold_and_misclassified(problem) -> None:
    task, correct = problem
    found = latent_attack(task, ADAPTIVE, EPS, attack_mask=correct)
    assert found.found.any(), "the random CNN should be breakable on the manifold"
    assert not (found.found & ~correct).any()
    rows = found.found
    with torch.no_grad():
        images = task.generator(found.points[rows], task.y[rows])
    torch.testing.assert_close(flat_norm(images - task.x[rows]), found.distance[rows], atol=1e-4, rtol=1e-4)
    assert torch.all(task.model(images).argmax(dim=1) != task.y[rows])


@pytest.mark.parametrize("config", [ADAPTIVE, LAGRANGIAN], ids=["adaptive", "lagrangian"])
def test_evaluation_count_is_what_the_method_reports(problem, config) -> None:
    task, correct = problem
    counting = CountingGenerator(task.generator)
    latent_attack(dataclasses.replace(task, generator=counting), config, EPS, attack_mask=correct)
    assert counting.rows == evaluations_per_point(config) * int(correct.sum())


def test_adaptive_matches_lagrangian_with_a_third_of_the_evaluations(problem) -> None:
    """Our online lambda search finds (nearly) every point the restarted binary search finds, at each eps."""
    task, correct = problem
    assert 3 * evaluations_per_point(ADAPTIVE) <= evaluations_per_point(LAGRANGIAN)
    ours = latent_attack(task, ADAPTIVE, EPS, attack_mask=correct)
    reference = latent_attack(task, LAGRANGIAN, EPS, attack_mask=correct)
    for eps in EPS:
        assert int((ours.distance <= eps).sum()) >= int((reference.distance <= eps).sum()) - 1, eps


@pytest.mark.parametrize("method", ["adaptive", "lagrangian"])
def test_suite_in_distribution_is_not_below_what_it_verifies(problem, method) -> None:
    task, correct = problem
    config = AttackSuiteConfig(
        unconstrained=apgd_stages(10, 1),
        latent=LatentAttackConfig(method=method, steps=10, outer_steps=2, inner_steps=20, lr=0.1),
        minimal=MinimalConfig(enabled=False),
        flags=FlagsConfig(noise_draws=1, random_search_queries=0),
    )
    out = run_attacks(task.model, task.x, task.y, EPS, config, generator=task.generator, z=task.z, seed=1,
                      batch_size=8, progress=False)
    assert out.robust_in is not None and out.r_in is not None
    assert out.config_dict()["in_distribution"] == method
    np.testing.assert_array_equal(out.clean_correct, correct.numpy())
    assert np.all(out.robust_in[:, 1:] <= out.robust_in[:, :-1])
    broken = ~out.robust_in & out.clean_correct[:, None]
    assert np.all(out.r_in[:, None][broken.any(axis=1)] <= EPS[-1] + 1e-5)
    assert np.all(out.r_in[~out.clean_correct] == 0)


class StartRecorder(nn.Module):
    """Wraps a generator and keeps the latents of every batch it generates, in order."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator, self.calls = generator, []

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append(z.detach().clone())
        return self.generator(z, y)


def test_survivors_are_the_near_misses_and_continue_from_their_closest_adversarial(problem) -> None:
    """Only points whose closest adversarial lies beyond an eps and within ratio x it continue, from that point;
    what they find never moves a point's closest adversarial farther."""
    task, correct = problem
    one_batch = dataclasses.replace(task, batch_size=N)  # as the recorded run: float results may depend on batching
    short = LatentAttackConfig(steps=6, lr=0.1)
    first = latent_attack(one_batch, short, EPS, attack_mask=correct)
    ratio = 2.0
    near = np.array([any(e < d <= ratio * e for e in EPS) for d in first.distance.tolist()])
    assert near.any() and (~near & correct.numpy()).any(), "the fixture should have both near misses and others"

    recorder = StartRecorder(task.generator)
    config = short.model_copy(update={"survivor_steps": 4, "survivor_ratio": ratio})
    found = latent_attack(dataclasses.replace(one_batch, generator=recorder), config, EPS, attack_mask=correct)
    # one batch each: the first phase's 7 evaluations, then the survivors' clean latents (their clean margin) and 5
    assert len(recorder.calls) == (short.steps + 1) + 1 + (config.survivor_steps + 1)
    clean, start = recorder.calls[short.steps + 1], recorder.calls[short.steps + 2]
    rows = torch.as_tensor(near)
    torch.testing.assert_close(clean, task.z[rows])
    torch.testing.assert_close(start, first.points[rows])
    assert torch.all(found.distance <= first.distance)


def test_each_further_survivor_round_continues_the_nearer_misses_at_half_the_step(problem) -> None:
    """Round k runs at lr / 2^k on the points within 1 + (ratio - 1) / 2^k of an eps beyond it, each from its closest
    adversarial after the round before."""
    task, correct = problem
    config = LatentAttackConfig(steps=6, lr=0.1, survivor_steps=4, survivor_ratio=1.3, survivor_rounds=2)
    assert [(run.steps, run.lr, ratio) for run, ratio in survivor_runs(config)] == [(4, 0.1, 1.3), (4, 0.05, 1.15)]
    one_batch = dataclasses.replace(task, batch_size=N)
    after_first = latent_attack(one_batch, config.model_copy(update={"survivor_rounds": 1}), EPS, attack_mask=correct)
    first = torch.tensor([any(e < d <= 1.3 * e for e in EPS) for d in after_first.distance.tolist()])
    nearer = torch.tensor([any(e < d <= 1.15 * e for e in EPS) for d in after_first.distance.tolist()])
    assert nearer.any() and (first & ~nearer).any(), "the fixture should have misses of both kinds"

    recorder = StartRecorder(task.generator)
    found = latent_attack(dataclasses.replace(one_batch, generator=recorder), config, EPS, attack_mask=correct)
    second = (config.steps + 1) + 1 + (config.survivor_steps + 1)
    assert len(recorder.calls) == second + 1 + (config.survivor_steps + 1)
    torch.testing.assert_close(recorder.calls[second], task.z[nearer])
    torch.testing.assert_close(recorder.calls[second + 1], after_first.points[nearer])
    assert torch.all(found.distance <= after_first.distance)


def test_control_one_survivor_round_is_one_run() -> None:
    config = LatentAttackConfig(survivor_steps=4, survivor_ratio=3.0)
    assert [(run.lr, ratio) for run, ratio in survivor_runs(config)] == [(config.lr, 3.0)]
    assert survivor_runs(config.model_copy(update={"survivor_steps": 0, "survivor_rounds": 3})) == []


def test_control_without_survivor_steps_nothing_continues(problem) -> None:
    task, correct = problem
    recorder = StartRecorder(task.generator)
    latent_attack(dataclasses.replace(task, generator=recorder), LatentAttackConfig(steps=6, lr=0.1), EPS,
                  attack_mask=correct)
    assert len(torch.cat(recorder.calls)) == 7 * int(correct.sum())


def test_generator_jacobian_is_the_exact_jacobian(problem) -> None:
    """The batched forward-mode Jacobian equals autograd's reverse-mode Jacobian of each example's image."""
    task = problem[0]
    z, y = task.z[:3], task.y[:3]
    ours = generator_jacobian(task.generator, z, y, chunk=7)
    for i in range(3):
        exact = torch.autograd.functional.jacobian(lambda v: task.generator(v[None], y[i : i + 1]).flatten(), z[i])
        torch.testing.assert_close(ours[i], exact, atol=1e-5, rtol=1e-4)


class LinearGenerator(nn.Module):
    """g(z) = A z as a 1x4x4 image, with A's singular values spanning 1,000x (the ill-conditioning of real GANs)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        u, _ = torch.linalg.qr(torch.randn(16, 8))
        v, _ = torch.linalg.qr(torch.randn(8, 8))
        self.register_buffer("u", u)
        self.register_buffer("a", u @ torch.diag(torch.tensor([10, 5, 2, 1, 0.3, 0.1, 0.03, 0.01])) @ v.T)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (z @ self.a.T).view(-1, 1, 4, 4)


class SlowDirectionClassifier(nn.Module):
    """Two classes; class 0 until the image moves 0.1 from `centre` along the generator's slowest direction."""

    def __init__(self, direction: torch.Tensor, centre: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("direction", direction)
        self.register_buffer("centre", centre.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        along = (x.flatten(1) - self.centre) @ self.direction
        return torch.stack([torch.zeros_like(along), 10 * along - 1], dim=1)


def test_image_coordinates_give_every_direction_the_same_image_step() -> None:
    """B = V (S^2 + mu^2)^-1/2: J B has orthogonal columns of length s / sqrt(s^2 + mu^2)."""
    generator = LinearGenerator()
    z, y = torch.randn(2, 8), torch.zeros(2, dtype=torch.long)
    basis = image_coordinates(generator, z, y, floor=1e-3)
    moved = generator.a @ basis  # (2, 16, 8): the image step of each unit coordinate
    s = torch.linalg.svdvals(generator.a).flip(0)  # ascending, like eigh
    expected = s**2 / (s**2 + (1e-3 * s.max()) ** 2)
    torch.testing.assert_close(moved.transpose(1, 2) @ moved, torch.diag_embed(expected).expand(2, 8, 8),
                               atol=1e-4, rtol=1e-3)


def test_preconditioned_attack_reaches_an_adversarial_along_the_slowest_direction() -> None:
    """The closest adversarial is 0.1 away in the image but 10 latent units away: 40 Adam steps on z cannot get
    there (the control), the same 40 steps in image coordinates find it."""
    generator = LinearGenerator()
    z, y = torch.zeros(4, 8), torch.zeros(4, dtype=torch.long)
    x = generator(z, y)
    model = SlowDirectionClassifier(generator.u[:, 7], x).eval()
    task = LatentTask(model, generator, x, y, z, batch_size=4)
    plain = LatentAttackConfig(steps=40, lr=0.05)
    preconditioned = plain.model_copy(update={"precondition": 1e-3, "lr": 0.02})
    assert not latent_attack(task, plain, [0.2], attack_mask=torch.ones(4, dtype=torch.bool)).found.any()
    found = latent_attack(task, preconditioned, [0.2], attack_mask=torch.ones(4, dtype=torch.bool))
    assert found.found.all() and torch.all(found.distance <= 0.12), found.distance


def test_generator_gram_fits_its_memory_and_chunking_changes_no_value(problem, monkeypatch) -> None:
    """J^T J computed in chunks of examples and axes that fit a small memory budget equals J^T J of the whole batch's
    Jacobian (up to float32 rounding: batch sizes pick kernels), and no batched call holds more than the budget;
    control: a large budget makes one call."""
    import irob_bench.attacks.latent as latent

    task = problem[0]
    z, y = task.z[:5], task.y[:5]
    calls: list[tuple[int, int]] = []
    real = latent.generator_jacobian

    def spy(generator, w, labels, chunk=32):
        calls.append((len(w), min(chunk, w.shape[1])))
        return real(generator, w, labels, chunk=chunk)

    monkeypatch.setattr(latent, "generator_jacobian", spy)
    whole = real(task.generator, z, y).double()
    per_evaluation = 2 * latent.activation_bytes(task.generator, z, y)
    budget = 3 * per_evaluation  # three generator evaluations per call: one example, three axes
    chunked, exact = latent.generator_gram(task.generator, z, y, memory=budget), whole.transpose(1, 2) @ whole
    # float32 rounding only: within 1e-6 of the Gram's largest entry (each entry sums 784 float32 products)
    torch.testing.assert_close(chunked, exact, rtol=1e-4, atol=1e-6 * exact.abs().max().item())
    assert calls and all(points * axes * per_evaluation <= budget for points, axes in calls), calls
    assert sum(points for points, _ in calls) == 5
    calls.clear()
    latent.generator_gram(task.generator, z, y, memory=1 << 40)
    assert calls == [(5, min(32, z.shape[1]))]


class PixelPerAxis(nn.Module):
    """A generator network with one pixel per latent axis: image = sigmoid(z) as (1, 2, 2)."""

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z).view(-1, 1, 2, 2)


class FirstPixelVote(nn.Module):
    """Two classes: 1 while the first pixel is dark, 0 once it is bright."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, 0]
        return torch.stack([torch.zeros_like(first), 1 - 2 * first], dim=1)


@pytest.mark.parametrize("config", [ADAPTIVE, ADAPTIVE.model_copy(update={"precondition": 0.01})],
                         ids=["plain", "image-coordinates"])
def test_in_distribution_attack_follows_binarised_generators_straight_through(config) -> None:
    """On p = inf (binarisation) two images differ by at least 1 in L2, one flipped channel, and the true gradient is
    zero: the attack must follow the generator straight through (BPDA) to find the one-channel flips."""
    from irob_bench.datasets.distribution import ConditionalGenerator

    binarised = ConditionalGenerator(PixelPerAxis(), {"saturation_p": "inf"}).eval()
    z = torch.tensor([[-0.2, 3.0, -3.0, 3.0], [-1.0, -3.0, 3.0, 3.0], [-2.0, 3.0, 3.0, -3.0]])
    y = torch.ones(3, dtype=torch.long)
    with torch.no_grad():
        x = binarised(z, y)
    model = FirstPixelVote()
    assert torch.equal(model(x).argmax(dim=1), y)
    mask = torch.ones(3, dtype=torch.bool)
    task = LatentTask(model, binarised.for_attacks(), x, y, z, batch_size=3)
    found = latent_attack(task, config, [0.5, 1.0], attack_mask=mask)
    assert found.found.all()
    torch.testing.assert_close(found.distance, torch.ones(3))  # exactly the first channel flipped
    with torch.no_grad():
        images = binarised(found.points, y)  # re-generated by the true map
    assert torch.equal(model(images).argmax(dim=1), torch.zeros(3, dtype=torch.long))
    # Control: through the true map's zero gradient the same attack never moves and finds nothing.
    blind = latent_attack(dataclasses.replace(task, generator=binarised), config, [0.5, 1.0], attack_mask=mask)
    assert not blind.found.any()


def test_in_distribution_attack_goes_on_past_a_pixel_at_one_half() -> None:
    """s_8's slope at a pixel of exactly 1/2 is infinite (NaN in autograd): through the true map one such pixel
    stalls the image's whole attack; through `for_attacks` that pixel gives no gradient and the attack goes on."""
    from irob_bench.datasets.distribution import ConditionalGenerator

    saturated = ConditionalGenerator(PixelPerAxis(), {"saturation_p": 8}).eval()
    z = torch.tensor([[-0.5, 0.0, 3.0, 3.0]])  # sigmoid(0) is exactly 1/2
    y = torch.ones(1, dtype=torch.long)
    with torch.no_grad():
        x = saturated(z, y)
    assert x.flatten()[1] == 0.5
    mask = torch.ones(1, dtype=torch.bool)
    task = LatentTask(FirstPixelVote(), saturated.for_attacks(), x, y, z, batch_size=1)
    found = latent_attack(task, ADAPTIVE, [0.5, 1.0], attack_mask=mask)
    assert found.found.all() and found.distance[0] < 1.0
    # Control: through the true map the first step is NaN and nothing is ever found.
    stalled = latent_attack(dataclasses.replace(task, generator=saturated), ADAPTIVE, [0.5, 1.0], attack_mask=mask)
    assert not stalled.found.any()
