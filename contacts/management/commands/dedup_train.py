"""Learn the duplicate model's weights from generated, labelled contacts and print how well
it does on a second, independently generated set:

    manage.py dedup_train [--people 20000] [--write]

--write saves the weights, thresholds and test figures to contacts/dedup/model.json (the
model every scan uses); without it the command only prints."""

import json

from django.core.management.base import BaseCommand

from contacts.dedup.evaluate import train_and_measure
from contacts.dedup.model import MODEL_PATH


class Command(BaseCommand):
    help = "Train the duplicate-detection model on generated data and print its figures."

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, default=20000)
        parser.add_argument("--write", action="store_true")

    def handle(self, *args, people, write, **options):
        result = train_and_measure(people=people)
        model, report = result["model"], result["report"]
        out = self.stdout
        out.write(
            f"rows {report['rows']:,}  candidate pairs {report['candidate_pairs']:,}  "
            f"({report['candidates_per_record']} per record, compared in "
            f"{report['compare_seconds']} s)"
        )
        out.write(
            f"blocking recall: {report['blocking_recall_pairs']:.4f} of true pairs share a key; "
            f"{report['blocking_recall_groups']:.4f} are joined in one group"
        )
        for name in ("probable", "possible"):
            row = report[name]
            out.write(
                f"{name:>8} ≥ {row['threshold']:.4f}: precision {row['precision']:.4f}  "
                f"recall {row['recall']:.4f}  F1 {row['f1']:.4f}  "
                f"({row['false_positives']} wrong pairs)"
            )
        if write:
            MODEL_PATH.write_text(
                json.dumps(model.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            out.write(f"written to {MODEL_PATH}")
