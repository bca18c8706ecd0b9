"""Embeddings for evaluation, registered by name in :data:`EMBEDDINGS` (thesis Sec. 3.2.1).

- ``classifier`` (default for images): a small CNN trained on the reference's train
  split and cached on disk; ``logits``, ``prelogits`` or ``hypercolumns`` features
  (Sec. 3.4.3) and its softmax for the Inception and Mode Scores.
- ``pixels``: the flattened images (point sets as they are).
- ``pca``: the principal components keeping 95% of the training images' variance.
- ``inception``: Inception-v3 pool features through torch-fidelity (``kdegen[fidelity]``).

``make_embedding(name, Reference(name, test, train), EmbedSettings(...)).embed(images)``
returns an :class:`Embedded` with the features and, for classifiers, probabilities.
"""

# Imported for their side effect: each module registers its embedding in EMBEDDINGS.
from kdegen.evaluation.embed import classifier, inception, simple  # noqa: F401
from kdegen.evaluation.embed.base import (
    CLASSIFIER_FEATURES,
    EMBEDDINGS,
    Embedded,
    Embedding,
    EmbedSettings,
    Reference,
    make_embedding,
    register_embedding,
)
from kdegen.evaluation.embed.classifier import (
    ClassifierEmbedding,
    ClassifierPlan,
    cache_dir,
    classifier_embedding,
    forget_loaded,
    plan_classifier,
)
from kdegen.nets.classifier import ClassifierConfig, SmallCNN

__all__ = [
    "CLASSIFIER_FEATURES",
    "EMBEDDINGS",
    "ClassifierConfig",
    "ClassifierEmbedding",
    "ClassifierPlan",
    "EmbedSettings",
    "Embedded",
    "Embedding",
    "Reference",
    "SmallCNN",
    "cache_dir",
    "classifier_embedding",
    "forget_loaded",
    "make_embedding",
    "plan_classifier",
    "register_embedding",
]
