"""The stages of one generation: train the generator, generate with the quality gates, push the kept block into the
stack, train and evaluate every classifier (and, once per run, the learned subgroup oracle). Each stage has its key in
the run state, its folder, and ``run(context)``, which does nothing when the state records it as done."""

from simulation.stages.base import RunContext, Stage
from simulation.stages.classifier import EvaluateClassifier, TrainClassifier
from simulation.stages.generate import GenerateBlock
from simulation.stages.generator import TrainGenerator
from simulation.stages.oracle import TrainSubgroupOracle
from simulation.stages.push import PushBlock, ReviewPause

__all__ = ["EvaluateClassifier", "GenerateBlock", "PushBlock", "ReviewPause", "RunContext", "Stage",
           "TrainClassifier", "TrainGenerator", "TrainSubgroupOracle"]
