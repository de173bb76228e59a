"""Language-model policy training with token-level GAE.

State: the text so far; action: the next token; reward: a scorer's sequence
score at the end plus a per-token KL penalty. See `rollouts` for the
token/transition alignment and docs/design.md ("Sequences").
"""

from keras_gae.lm.causal_lm_ppo_model import CausalLMPPOModel
from keras_gae.lm.causal_outputs import causal_log_probs
from keras_gae.lm.generation import GenerationOutputs
from keras_gae.lm.generation import generate
from keras_gae.lm.rewards import sequence_kl
from keras_gae.lm.rewards import token_rewards
from keras_gae.lm.rollouts import SequenceRollout
from keras_gae.lm.rollouts import response_mask
from keras_gae.lm.rollouts import sequence_advantages
from keras_gae.lm.rollouts import sequence_rollout_batch
from keras_gae.lm.rollouts import whiten_advantages
from keras_gae.lm.token_logits_head import TokenLogitsHead

__all__ = [
    "CausalLMPPOModel",
    "GenerationOutputs",
    "SequenceRollout",
    "TokenLogitsHead",
    "causal_log_probs",
    "generate",
    "response_mask",
    "sequence_advantages",
    "sequence_kl",
    "sequence_rollout_batch",
    "token_rewards",
    "whiten_advantages",
]
