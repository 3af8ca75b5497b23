# hpc.pcluster: one-command entry points. Every target prepares what it needs.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

SANDBOX_COMPUTE_NODES ?= 2
SANDBOX_GPUS_PER_NODE ?= 1
# make demo: the sandbox comes up without a cluster (--no-cluster) and deploy.yml creates it through
# ParallelCluster's own template. make demo DEMO_UP_ARGS= : the sandbox with its pre-registered cluster, as
# make sandbox-up brings it up (tests/integration runs on that one).
DEMO_UP_ARGS ?= --no-cluster
# The sandbox of make sandbox-up (tests/integration's, which watch ParallelCluster's clustermgtd replace nodes and
# stop the fleet): clustermgtd loops every 10 s instead of ParallelCluster's 60.
SANDBOX_UP_ARGS ?= --clustermgtd-loop-time 10

.PHONY: help setup demo test lint sanity unit integration molecule bench \
        sandbox-up sandbox-down sandbox-status clean

help:
	@echo "make demo     deploy.yml against the local sandbox (no AWS account needed)"
	@echo "make test     every test suite: lint, sanity, unit, integration, e2e, molecule"
	@echo "make setup    Debian packages, .venv, amazon.aws (run by the targets above)"
	@echo "make sandbox-up | sandbox-down | sandbox-status"
	@echo "make bench    benchmarks, printing ratios against their baselines"

setup:
	@bash scripts/setup.sh

sandbox-up: setup
	@$(PY) sandbox/sandbox.py up --if-needed --compute-nodes $(SANDBOX_COMPUTE_NODES) --gpus-per-node $(SANDBOX_GPUS_PER_NODE) $(SANDBOX_UP_ARGS)

sandbox-down:
	@$(PY) sandbox/sandbox.py down

sandbox-status:
	@$(PY) sandbox/sandbox.py status

demo: setup
	@$(PY) sandbox/sandbox.py up --if-needed --compute-nodes $(SANDBOX_COMPUTE_NODES) --gpus-per-node $(SANDBOX_GPUS_PER_NODE) $(DEMO_UP_ARGS)
	@source sandbox/.state/env.sh && \
	  ansible-playbook -i sandbox/.state/inventory playbooks/deploy.yml

test: setup
	@bash scripts/test.sh

lint: setup
	@bash scripts/test.sh lint

sanity: setup
	@bash scripts/test.sh sanity

unit: setup
	@bash scripts/test.sh unit

integration: setup
	@bash scripts/test.sh integration

molecule: setup
	@bash scripts/test.sh molecule

bench: setup
	@$(PY) sandbox/sandbox.py up --if-needed --compute-nodes $(SANDBOX_COMPUTE_NODES) --gpus-per-node $(SANDBOX_GPUS_PER_NODE)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-@$(PY) sandbox/sandbox.py down --all 2>/dev/null
	rm -rf tests/output reports .pytest_cache
