"""`reelvec up --gpu`: the same stack with the models on the machine's GPU. The plan is checked here;
the processes themselves need CUDA, which CI lacks (bench/gpu/run.sh runs them on a lent GPU)."""

from reelvec.models import VISUAL_MODEL_NAME
from reelvec.tools import launcher


def _argv(stack: launcher.Stack, name: str) -> list[str]:
    return next(c.argv for c in stack.children if c.name == name)


def test_gpu_serves_the_python_gpu_config_and_puts_whisper_on_cuda(tmp_path):
    stack = launcher.Stack(tmp_path, launcher.free_port(), launcher.free_port(), gpu=True)
    stack.plan()
    triton, transcriber = _argv(stack, "triton"), _argv(stack, "transcriber")
    assert "--model-config-name=python_gpu" in triton
    # the config it names is in the repository the stack serves
    assert (stack.repository / VISUAL_MODEL_NAME / "configs" / "python_gpu.pbtxt").is_file()
    assert transcriber[transcriber.index("--device") + 1] == "cuda"


def test_without_gpu_the_cpu_config_and_whisper_on_the_cpu(tmp_path):
    stack = launcher.Stack(tmp_path, launcher.free_port(), launcher.free_port())
    stack.plan()
    assert not any(arg.startswith("--model-config-name") for arg in _argv(stack, "triton"))
    assert "--device" not in _argv(stack, "transcriber")
