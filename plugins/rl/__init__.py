"""iqabench plugin: reinforcement-learning trainers for reasoning IQA models.

* ``grpo`` (:mod:`.grpo`): Q-Insight's multi-task GRPO of a Qwen2.5-VL model
  (score regression and degradation perception, :mod:`.degradation`) with its
  rewards (or VisualQuality-R1's), through trl; checkpoints load in the
  ``q-insight`` model.
* ``ract`` (:mod:`.ract`): the paper's Reasoning-Aligned Cross-domain Training;
  checkpoints load in the ``ract`` model.
* ``sft`` (:mod:`.sft`): supervised fine-tuning on score answers (Table 2's
  "SFT Qwen"); checkpoints load in the ``qwen-sft`` model.

Rewards are a registry of their own (:mod:`.rewards`), open to plugins through
the ``iqabench.scoring.rewards`` entry-point group. docs/training.md has the formulas,
defaults and the multi-GPU launch command; docs/fidelity.md compares every
setting with the paper and the releases.
"""

from iqabench.api import hookimpl


@hookimpl
def iqabench_trainers():
    from iqabench_plugins.rl.grpo import GRPO
    from iqabench_plugins.rl.ract import RACT
    from iqabench_plugins.rl.sft import ScoreSFT

    return [GRPO, RACT, ScoreSFT]
