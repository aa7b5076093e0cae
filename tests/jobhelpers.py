"""Running a background job in a test as a worker runs it: the runner's one Celery task,
handed the job's kind and ids (eagerly, in the test's process and transaction)."""

from crm.jobs.tasks import run_job_task


def run_job(job, *, throw: bool = False) -> str:
    """ "ran" when the job was claimed and run, "not claimed" when it was not ours to run."""
    return run_job_task.apply(args=[job.kind, job.org_id, job.pk], throw=throw).get()
