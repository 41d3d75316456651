"""Every file medfit writes is written atomically (a temporary file, then os.replace): a kill never leaves half a
file. A static guard: direct writer calls appear only with a temporary file, an open handle or a buffer."""
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medfit"
WRITERS = re.compile(r"(cv2\.imwrite|\.savefig|torch\.onnx\.export|torch\.save|np\.savez?|save_file|\.to_csv)\(([^\n]*)")
# A first argument naming one of these is a temporary file, an open handle or an in-memory buffer.
SAFE_TARGET = re.compile(r"\b(tmp|fh|buf)\b")


def test_direct_writes_go_through_a_temporary_file():
    direct = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for call, args in WRITERS.findall(line):
                if not SAFE_TARGET.search(args) and not line.lstrip().startswith(("#", "f\"", "raise")) \
                        and "safetensors.torch.save_file(model" not in line:
                    direct.append(f"{path.relative_to(PACKAGE)}:{lineno}: {line.strip()}")
    assert direct == []
