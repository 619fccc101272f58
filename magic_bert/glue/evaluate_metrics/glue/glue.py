"""GLUE metrics as an ``evaluate`` module, computed by ``magic_bert.glue.metrics`` (no scikit-learn, no download).

    metric = evaluate.load("<this folder>", "mrpc")        # or magic_bert.glue.metrics.load_glue_metric("mrpc")
    metric.add_batch(predictions=[1, 0], references=[1, 1])
    metric.compute()                                       # {'f1': 0.666..., 'accuracy': 0.5}

The config name is a GLUE task (``mnli``, ``qqp``, ``qnli``, ``cola``, ``sst2``, ``stsb``, ``rte``, ``mrpc``); any
other name needs ``metrics=`` (names from ``magic_bert.glue.metrics.METRICS``, e.g. a user's task record's).
"""

import datasets
import evaluate

from magic_bert.glue.metrics import REGRESSION_METRICS, compute_metrics, glue_metric_names

_DESCRIPTION = "GLUE metrics of the magic_bert package (the keys of evaluate's glue module, plus macro_f1)."
_CITATION = """@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={ICLR}, year={2019}}
"""
_INPUTS = """
Args:
    predictions: predicted label ids (a float score for STS-B and other regression metrics).
    references: the true label ids (scores).
Returns: the task's metrics, e.g. {"f1": ..., "accuracy": ...} for MRPC and QQP.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Glue(evaluate.Metric):
    def __init__(self, *args, metrics=None, **kwargs):
        self._requested = metrics  # read by `_info`, which evaluate's __init__ calls
        super().__init__(*args, **kwargs)

    def _info(self) -> evaluate.MetricInfo:
        self.metric_names = glue_metric_names(self.config_name, self._requested)
        value = "float32" if self.metric_names[0] in REGRESSION_METRICS else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_INPUTS, format="numpy",
            features=datasets.Features({"predictions": datasets.Value(value), "references": datasets.Value(value)}),
            reference_urls=["https://gluebenchmark.com/"])

    def _compute(self, predictions, references) -> dict[str, float]:
        return compute_metrics(self.metric_names, predictions, references)
