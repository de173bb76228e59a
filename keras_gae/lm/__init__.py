"""Language-model policy training: PPO with token-level GAE or critic-free
group estimators, on keras-hub causal LMs or any Keras 3 model.

State: the text so far; action: the next token; reward: a scorer's sequence
score at the end plus an optional per-token KL penalty. See `rollouts` for
the token/transition alignment and docs/design.md ("Sequences").
"""

from keras_gae.lm.advantages import grpo_advantages
from keras_gae.lm.advantages import reinforce_pp_advantages
from keras_gae.lm.advantages import reward_to_go
from keras_gae.lm.advantages import rloo_advantages
from keras_gae.lm.advantages import whiten_advantages
from keras_gae.lm.causal_lm_policy import CausalLMPolicy
from keras_gae.lm.causal_lm_ppo_model import CausalLMPPOModel
from keras_gae.lm.causal_outputs import causal_log_probs
from keras_gae.lm.completion_evaluation import evaluate_completions
from keras_gae.lm.completion_logging import CompletionLogger
from keras_gae.lm.generation import GenerationOutputs
from keras_gae.lm.generation import generate
from keras_gae.lm.lora_adapters import lora_disabled
from keras_gae.lm.loss_aggregation import aggregate as aggregate_loss
from keras_gae.lm.reward_functions import RewardFunction
from keras_gae.lm.rewards import sequence_kl
from keras_gae.lm.rewards import token_rewards
from keras_gae.lm.rollouts import SequenceRollout
from keras_gae.lm.rollouts import response_mask
from keras_gae.lm.rollouts import sequence_advantages
from keras_gae.lm.rollouts import sequence_rollout_batch
from keras_gae.lm.text_prompts import decode_completions
from keras_gae.lm.text_prompts import encode_prompts
from keras_gae.lm.text_rewards import TextRewards
from keras_gae.lm.text_rollouts import TextRollout
from keras_gae.lm.text_rollouts import TextScorer
from keras_gae.lm.text_rollouts import collect_text
from keras_gae.lm.token_logits_head import TokenLogitsHead

__all__ = [
    "CausalLMPPOModel",
    "CausalLMPolicy",
    "CompletionLogger",
    "GenerationOutputs",
    "RewardFunction",
    "SequenceRollout",
    "TextRewards",
    "TextRollout",
    "TextScorer",
    "TokenLogitsHead",
    "aggregate_loss",
    "causal_log_probs",
    "evaluate_completions",
    "collect_text",
    "decode_completions",
    "encode_prompts",
    "generate",
    "grpo_advantages",
    "lora_disabled",
    "reinforce_pp_advantages",
    "response_mask",
    "reward_to_go",
    "rloo_advantages",
    "sequence_advantages",
    "sequence_kl",
    "sequence_rollout_batch",
    "token_rewards",
    "whiten_advantages",
]
