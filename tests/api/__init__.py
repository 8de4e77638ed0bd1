import warnings

# Starlette's TestClient warns that it wants `httpx2`; the installed httpx works.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
