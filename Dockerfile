# The SageMaker PyTorch training image with socal's pinned instance requirements installed, so a
# job installs nothing at start (see README, "The instance environment"). Not built in CI:
#   aws ecr get-login-password --region us-east-1 | docker login --username AWS \
#       --password-stdin 763104351884.dkr.ecr.us-east-1.amazonaws.com
#   docker build -t socal-train:2.8 .
#   then tag and push it to your ECR repository, and launch with
#   python launch.py sagemaker.image=ACCOUNT.dkr.ecr.REGION.amazonaws.com/socal-train:2.8 sagemaker.requirements=null
# The base must be the image the requirements were pinned against (sagemaker.framework_version
# 2.8, py312: torch 2.8.0, torchvision 0.23.0); another region: change the registry host.
ARG BASE=763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.8-gpu-py312
FROM ${BASE}
COPY socal/requirements/instance.txt /tmp/socal-instance-requirements.txt
RUN pip install --no-cache-dir -r /tmp/socal-instance-requirements.txt \
    && rm /tmp/socal-instance-requirements.txt
