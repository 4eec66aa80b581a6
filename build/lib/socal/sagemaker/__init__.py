"""Amazon SageMaker, both sides of a training job.

Launch side (what ``launch.py`` imports; never torch, torchvision or transformers): the launch
config schema, hyperparameter encoding, job planning, the source archive, S3 upload, AWS
submission, checkpoint prefixes, following a sweep (``jobs``) and the ``instance=local``
container. Container side: ``exec_driver`` (the job's command: puts train.py at process 1 so it
gets the stop signal) and ``container`` (rebuilding and verifying the config on the instance,
publishing the model). The SageMaker SDK itself is
imported only in ``submit``, when a job is really built.
"""
