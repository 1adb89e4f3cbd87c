# The two commands a user needs: `make run` and `make test`. Both install what they need first.
.PHONY: setup run examples test test-quick lint bench clean

VENV := .venv
BIN := $(VENV)/bin

setup:
	@bash scripts/setup.sh

# The server: API + embedded worker, SQLite and files under ./data, the examples loaded as templates.
# The first start prints an API key.
run: setup
	$(BIN)/pressrun serve --seed-templates examples

# The bundled examples rendered from the command line into out/.
examples: setup
	$(BIN)/pressrun render examples/social-card examples/social-card/data.csv -o out/social-card
	$(BIN)/pressrun render examples/certificate examples/certificate/data.csv -o out/certificate --merge-pdf out/certificates.pdf
	$(BIN)/pressrun render examples/invoice examples/invoice/data.json -o out/invoice --filename '{{ number }}-{{ customer.name }}'

# pytest with the given arguments; collecting no test at all fails instead of passing as green.
pytest = @status=0; $(BIN)/pytest -q $(1) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$status

# Every test, the real-Chromium ones included.
test: setup
	$(call pytest)

# The tests that need no Chromium (see tests/conftest.py): API, dispatcher, webhooks, storage, templating.
test-quick: setup
	$(call pytest,-m "not chromium")

lint: setup
	$(BIN)/ruff check src tests bench

bench: setup
	$(BIN)/python bench/throughput.py
	cd bench && ../$(BIN)/python api_throughput.py

clean:
	rm -rf out .pytest_cache
