#!/bin/sh
# Installs the Debian 12 packages moedit builds, tests and trains with.
set -e
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config clang libclang-rt-14-dev \
  libopenblas-dev liblapacke-dev libstb-dev libcriterion-dev libcjson-dev zlib1g-dev \
  fonts-dejavu-core
# Fashion-MNIST for training and for scripts/eval_quality.sh's classifier scores
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends dataset-fashion-mnist
