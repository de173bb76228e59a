"""The names of the language-model advantage estimators, in plain Python.

`keras_gae.lm` (`CausalLMPPOModel(advantage_estimator=...)`,
`keras_gae.lm.advantages`) and `examples/train_lm_ppo.py` (its
`--estimator` flag) read them here. This module imports no TensorFlow, so
a program can check its flags before TensorFlow loads, as with
`keras_gae.presets`.
"""

# Token-level GAE with a critic, then the critic-free estimators
# (`keras_gae.lm.advantages`).
LM_ESTIMATORS = ("gae", "grpo", "dr_grpo", "rloo", "reinforce_pp")
CRITIC_FREE = LM_ESTIMATORS[1:]
# The estimators that compare the completions of a prompt: they need
# groups of >= 2 samples per prompt.
GROUP_ESTIMATORS = ("grpo", "dr_grpo", "rloo")
# What GRPO divides the centred returns by (TRL's `scale_rewards`).
REWARD_SCALES = ("group", "batch", "none")
