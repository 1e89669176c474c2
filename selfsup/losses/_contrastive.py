"""The base class of the contrastive losses (``ntxent``, ``dcl``, ``dclw``, ``hcl``): the compared
:class:`~selfsup.losses._pairs.Pairs` of :mod:`selfsup.losses._pairs`, then the hard-negative options of
:mod:`selfsup.losses._hard_negatives`, then the subclass's :meth:`ContrastiveLoss.reduce`.
"""

from __future__ import annotations

from torch import Tensor, nn

from selfsup.losses._feature_transform import FeatureTransform
from selfsup.losses._hard_negatives import add_anchor_negatives, drop_most_similar, mochi_negatives
from selfsup.losses._pairs import Pairs, contrastive_pairs
from selfsup.mix import Mix
from selfsup.schema import NonNegative, NonNegativeInt, Positive


class ContrastiveLoss(nn.Module):
    """What the contrastive losses share: τ, the gather switch, the candidates' arguments, and the
    hard-negative options.

    A subclass implements :meth:`reduce`, the loss of the compared :class:`Pairs`.

    Args:
        temperature: τ.
        gather_distributed: take negatives from every DDP rank (with gradient).
        drop_top_k: leave each anchor's k most similar negatives out of the softmax, as probable
            false negatives (0: none; at least one negative is always kept).
        mochi_hardest: MoCHi's N: synthetic negatives are mixed from each anchor's N most similar
            negatives (0: no MoCHi).
        mochi_mixes: MoCHi's s: mixtures of two of the hardest negatives per anchor.
        mochi_query_mixes: MoCHi's s': mixtures of the anchor with one of the hardest per anchor.
        ft_pos_alpha: feature transformation's positive extrapolation, λ = 1 + Beta(α, α) (0: off).
        ft_neg_alpha: feature transformation's negative interpolation, μ ~ Beta(α, α) (0: off).
        ft_normalize: re-normalise the transformed embeddings
            (:class:`~selfsup.losses._feature_transform.FeatureTransform`).
    """

    def __init__(
        self,
        temperature: Positive,
        gather_distributed: bool = True,
        drop_top_k: NonNegativeInt = 0,
        mochi_hardest: NonNegativeInt = 0,
        mochi_mixes: NonNegativeInt = 0,
        mochi_query_mixes: NonNegativeInt = 0,
        ft_pos_alpha: NonNegative = 0.0,
        ft_neg_alpha: NonNegative = 0.0,
        ft_normalize: bool = False,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        counts = {"drop_top_k": drop_top_k, "mochi_hardest": mochi_hardest, "mochi_mixes": mochi_mixes}
        counts["mochi_query_mixes"] = mochi_query_mixes
        bad = {k: v for k, v in counts.items() if v < 0}
        if bad:
            raise ValueError(f"hard-negative counts must be >= 0; got {bad}")
        if (mochi_mixes or mochi_query_mixes) and not mochi_hardest:
            raise ValueError("mochi_mixes and mochi_query_mixes need mochi_hardest > 0 (the negatives they mix)")
        self.temperature = temperature
        self.gather_distributed = gather_distributed
        self.drop_top_k = drop_top_k
        self.mochi = (mochi_hardest, mochi_mixes, mochi_query_mixes)
        ft = FeatureTransform(ft_pos_alpha, ft_neg_alpha, ft_normalize)
        self.transform = ft if ft_pos_alpha > 0 or ft_neg_alpha > 0 else None

    def reduce(self, p: Pairs, views: int) -> Tensor:
        """The scalar loss of the compared pairs."""
        raise NotImplementedError

    def forward(
        self,
        z: Tensor,
        views: int = 2,
        mix: Mix | None = None,
        keys: Tensor | None = None,
        negatives: Tensor | None = None,
        batch_negatives: str = "all",
    ) -> Tensor:
        """Loss of embeddings ``z`` (V*B, D), view-major; returns a scalar.

        ``keys``, ``negatives`` and ``batch_negatives`` let a method bring its own candidates
        (MoCo's key encoder and queue, NPID's memory bank): see :func:`contrastive_pairs`.
        """
        p = contrastive_pairs(
            z, views, self.temperature, self.gather_distributed, mix, keys, negatives, batch_negatives, self.transform
        )
        p = drop_most_similar(p, self.drop_top_k)
        hardest, mixes, query_mixes = self.mochi
        if hardest and (mixes or query_mixes):
            p = add_anchor_negatives(p, mochi_negatives(p, hardest, mixes, query_mixes), self.temperature)
        return self.reduce(p, views)
