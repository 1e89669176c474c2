"""iSogCLR: a temperature per training image, learned by distributionally robust optimisation
(Qiu et al., "Not All Semantics are Created Equal: Contrastive Self-supervised Learning with
Automatic Temperature Individualization", ICML 2023)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from selfsup.dist import gather_cat
from selfsup.losses._pairs import contrastive_pairs
from selfsup.schema import NonNegative, Positive, PositiveInt, Probability


class ISogCLR(nn.Module):
    """The robust global contrastive objective with one temperature τ_i per training image.

    For an anchor view a of image i with positive similarity s⁺ and the global batch's other
    images' views as negatives N_a (|N_a| = V(N-1) for V views of N images), iSogCLR minimises
    over the network and every τ_i ∈ [τ_min, τ_max]

        F = mean_a τ_i · (log E_{n∈N_a} exp((s_an − s⁺)/τ_i) + ρ),

    the KL-regularised worst case over distributions of the negatives (τ_i is the dual variable of
    a KL ball of radius ρ). Two moving averages make it independent of the batch size, both
    kept per training image, indexed by the dataset's sample index:

    - ``u_i`` estimates g_i = E_n exp(s_an/τ_i) (the paper's estimator without the positive's
      factor exp(−s⁺/τ_i), which cancels from both gradients, as in the authors' code): each view
      uses u_a = (1−γ) u_i + γ g_a (g_a of the batch; u_a = g_a the first time image i is seen),
      and u_i becomes the mean of its views' u_a.
    - the network's gradient is that of mean_a [E_n w_an s_an − s⁺_a] with detached weights
      w_an = exp(s_an/τ_i) / u_a (with V > 2 views, s⁺_a is the mean over the other views);
    - τ_i's gradient, log u_a + ρ − E_n w_an s_an/τ_i averaged over the views and clipped to
      ±``grad_clip``, drives a momentum step m_i ← (1−β) m_i + β ∂τ_i, then
      τ_i ← clip(τ_i − η m_i, τ_min, τ_max).

    The loss's value is F on the batch (with the batch's estimate of g); its gradient is the
    estimator's. Both are means over the V*B anchors, as in every loss here. The authors' code
    (``SogCLR_DRO_Loss``) and LibAUC's ``GCLoss_v1`` instead sum the two views' terms and average
    over the B images: twice this loss, so at their learning rate the network's step here is half
    theirs. To take their SGD step (their optimiser), use ``optim.optimizer.lr`` × 2 with
    ``optim.optimizer.weight_decay`` / 2 (lr × decay unchanged). Adam(W) divides the gradient's scale
    out, LARS nearly (on the layers it adapts). The temperatures' own steps (η) do not depend on it.
    Under DDP the negatives come from the global batch (gathered with gradient) and
    every rank writes every rank's images' state, so the state after a step equals the single
    process's. The state is three (num_samples,) buffers, sized when fitting starts
    (:meth:`resize_per_sample`) and saved in the checkpoint.

    Defaults: τ0 0.1, ρ 0.3, γ 0.9, τ ∈ [0.05, 0.7] (the paper's unimodal settings); the τ
    momentum β 0.5 and the clip 3 are the authors' released CIFAR command and code. Their command's
    step η 0.03 makes temperatures near τ_min oscillate from one visit of an image to the next
    (u_i, estimated at the previous visit's τ, is off by orders of magnitude at the new one), so
    the default here is η 0.01 (``tests/losses/test_isogclr.py`` has the constructed case).

    Args:
        tau_init: τ0, every image's starting temperature.
        tau_min: lower end of the temperatures' range.
        tau_max: upper end.
        rho: ρ, the KL radius; a larger ρ pushes temperatures down.
        gamma: γ, the weight of the batch's estimate in u's moving average (1: no memory).
        tau_lr: η, the temperatures' step size.
        tau_momentum: β, the weight of the new gradient in τ's momentum.
        grad_clip: the bound on |∂τ_i| before the momentum.
        gather_distributed: negatives from every DDP rank (with gradient).
        num_samples: images in the training set (resized to the data when fitting starts).

    Example:
        >>> from selfsup.losses import ISogCLR
        >>> loss = ISogCLR(num_samples=100)  # one temperature per image of a 100-image training set
        >>> z, index = torch.randn(2 * 8, 16), torch.arange(8)  # 2 views of images 0..7, view-major
        >>> loss(z, views=2, index=index).shape  # also steps those 8 images' temperatures
        torch.Size([])
    """

    def __init__(
        self,
        tau_init: Positive = 0.1,
        tau_min: Positive = 0.05,
        tau_max: Positive = 0.7,
        rho: NonNegative = 0.3,
        gamma: Probability = 0.9,
        tau_lr: Positive = 0.01,
        tau_momentum: Probability = 0.5,
        grad_clip: Positive = 3.0,
        gather_distributed: bool = True,
        num_samples: PositiveInt = 1,
    ) -> None:
        super().__init__()
        if not 0 < tau_min <= tau_max:
            raise ValueError(f"loss.tau_min={tau_min}, loss.tau_max={tau_max}: expected 0 < tau_min <= tau_max")
        if not tau_min <= tau_init <= tau_max:
            raise ValueError(f"loss.tau_init={tau_init}: expected within [tau_min, tau_max] = [{tau_min}, {tau_max}]")
        if rho < 0:
            raise ValueError(f"loss.rho={rho}: expected rho >= 0 (a KL radius)")
        for key, value in (("gamma", gamma), ("tau_momentum", tau_momentum)):
            if not 0 < value <= 1:
                raise ValueError(f"loss.{key}={value}: expected 0 < {key} <= 1")
        if tau_lr < 0 or grad_clip <= 0:
            raise ValueError(f"loss.tau_lr={tau_lr}, loss.grad_clip={grad_clip}: expected tau_lr >= 0, grad_clip > 0")
        self.tau_init, self.tau_min, self.tau_max = tau_init, tau_min, tau_max
        self.rho, self.gamma = rho, gamma
        self.tau_lr, self.tau_momentum, self.grad_clip = tau_lr, tau_momentum, grad_clip
        self.gather_distributed = gather_distributed
        self.u: Tensor
        self.tau: Tensor
        self.tau_grad: Tensor
        self.register_buffer("u", torch.zeros(num_samples))  # 0: not seen yet
        self.register_buffer("tau", torch.full((num_samples,), float(tau_init)))
        self.register_buffer("tau_grad", torch.zeros(num_samples))  # m, the momentum of ∂τ

    def resize_per_sample(self, num_samples: int) -> None:
        """Fresh state for ``num_samples`` images (before training or loading a checkpoint)."""
        if self.u.shape[0] != num_samples:
            self.u = self.u.new_zeros(num_samples)
            self.tau = self.u.new_full((num_samples,), float(self.tau_init))
            self.tau_grad = self.u.new_zeros(num_samples)

    def forward(self, z: Tensor, views: int = 2, index: Tensor | None = None) -> Tensor:
        """Embeddings ``z`` (V*B, D), view-major, of the images ``index`` (B,); a scalar.

        Updates the state of the images in ``index`` (every rank's, under DDP).
        """
        if index is None:
            raise ValueError("loss=isogclr keeps one temperature per training image and needs the sample index")
        b = z.shape[0] // views
        if index.shape != (b,):
            raise ValueError(f"index must be ({b},), one per image; got {tuple(index.shape)}")
        if int(index.max()) >= self.u.shape[0] or int(index.min()) < 0:
            raise ValueError(
                f"sample index {int(index.max())} outside the {self.u.shape[0]} images of loss=isogclr's state"
            )
        p = contrastive_pairs(z, views, 1.0, self.gather_distributed)
        sim, pos = p.sim, p.targets  # (V*B, V*N): cosines; 1/0 on the anchor's other views
        neg = ~p.masked & (pos == 0)
        count = neg.sum(1).clamp(min=1)
        rows = index.to(z.device).repeat(views)  # the anchors' images
        tau = self.tau[rows].to(sim.dtype)
        with torch.no_grad():
            scaled = sim.detach() / tau[:, None]
            # exp(s/τ) ≤ e^{1/τ_min}: finite in float32 for τ_min ≳ 0.012.
            e = torch.exp(scaled) * neg
            g = e.sum(1) / count
            u_old = self.u[rows].to(sim.dtype)
            u = torch.where(u_old > 0, (1 - self.gamma) * u_old + self.gamma * g, g)
            w = e / u[:, None]
            grad_tau = torch.log(u) + self.rho - (w * scaled).sum(1) / count
        s_pos = (sim * pos).sum(1) / (views - 1)
        surrogate = ((w * sim).sum(1) / count - s_pos).mean()
        with torch.no_grad():  # F on the batch: τ (log E exp((s − s⁺)/τ) + ρ)
            value = (tau * (torch.log(g) - s_pos.detach() / tau + self.rho)).mean()
            self._update(index, u.view(views, b).mean(0), grad_tau.view(views, b).mean(0))
        return surrogate - surrogate.detach() + value

    @torch.no_grad()
    def _update(self, index: Tensor, u: Tensor, grad_tau: Tensor) -> None:
        """Write the images' new u and take their τ step; every rank's images under DDP."""
        index, u, grad_tau = index.to(self.u.device), u.to(self.u.dtype), grad_tau.to(self.u.dtype)
        # Every rank keeps every image's state, whatever the negatives.
        index, u, grad_tau = gather_cat(index), gather_cat(u), gather_cat(grad_tau)
        m = (1 - self.tau_momentum) * self.tau_grad[index] + self.tau_momentum * grad_tau.clamp(
            -self.grad_clip, self.grad_clip
        )
        self.u[index] = u
        self.tau_grad[index] = m
        self.tau[index] = (self.tau[index] - self.tau_lr * m).clamp(self.tau_min, self.tau_max)

    def logged(self) -> dict[str, Tensor]:
        """Quantiles of the temperatures of the images seen so far, for the training log."""
        seen = self.tau[self.u > 0]
        if seen.numel() == 0:
            return {}
        seen = seen[:: -(-seen.numel() // 16_000_000)]  # torch.quantile takes at most 16M values
        q = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], device=seen.device, dtype=seen.dtype)
        values = torch.quantile(seen, q)
        names = ("tau_min", "tau_q10", "tau_median", "tau_q90", "tau_max")
        return dict(zip(names, values, strict=True))
