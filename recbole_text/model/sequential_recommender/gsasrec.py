"""gSASRec (Petrov & Macdonald, RecSys'23): SASRec trained with k sampled negatives and the calibrated gBCE loss.

The encoder is :class:`SeqSASRec`'s causal transformer; training takes a loss at **every position** of the
shifted sequence with ``num_negatives`` = k uniformly sampled negatives and

    α = k / (N − 1),   β = 1 − t(1 − α)        (N = catalogue size, t = ``gbce_t``)
    L = [β·softplus(−s⁺) + Σ_{j=1..k} softplus(s⁻_j)] / (k + 1)

i.e. −[log σ(s⁺)^β + Σ log(1 − σ(s⁻))]/(k+1), written in the numerically stable softplus form. ``t = 0`` is
plain BCE with sampled negatives (overconfident: σ(s) overestimates the chance of the positive); ``t = 1``
makes σ(s) calibrated against the full catalogue; the paper uses t = 0.75 and k = 256 on ML-1M.

Only the k sampled items are scored in training, so memory does not grow with the catalogue. The k negatives
are drawn once per sequence and shared by its positions (one (batch, k, d) gather instead of
(batch, L, k, d)); a negative that equals the position's positive is ignored. ``tie_embeddings`` chooses
shared or separate input/output item embeddings. Ranking: ``full_sort_predict`` scores all items from the
last position. Defaults in ``properties/model/gSASRec.yaml``.
"""
from recbole_text.model.sequential_recommender.seqsasrec import SeqSASRec


class gSASRec(SeqSASRec):  # noqa: N801 (the paper's name)
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if self.loss_type != "gBCE":
            self.logger.warning(f"gSASRec with loss_type={self.loss_type}: gBCE is what makes it gSASRec")
