#!/bin/sh
# Installs the Debian 12 packages moedit builds, tests and trains with.
set -e
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config clang libclang-rt-14-dev \
  libopenblas-dev liblapacke-dev libstb-dev libcriterion-dev libcjson-dev zlib1g-dev libsimde-dev \
  fonts-dejavu-core libcairo2-dev poppler-utils libxml2-utils \
  python3-numpy python3-pytest python3-scipy python3-setuptools python3-pip python3-venv \
  slurm-wlm munge openmpi-bin
# Fashion-MNIST for training and for scripts/eval_quality.sh's classifier scores
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends dataset-fashion-mnist
# Only to regenerate test fixtures and run the comparisons (tools/*.py, run
# with /usr/bin/python3); the test suite reads the committed fixtures.
if [ "${MOEDIT_FIXTURE_TOOLS:-0}" = 1 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-torch
fi
