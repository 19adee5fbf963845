"""``python -m fedlab.report --samples dataset=mnist``: a data set's first training examples.

Images are drawn with their class names (``samples.png``); token sequences are written as text
with their next-token targets (``samples.txt``). TensorFlow (through the data set loaders) is
imported only when :func:`draw_samples` runs.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _first_examples(data, count: int = 25) -> list[tuple[np.ndarray, np.ndarray]]:
    examples = []
    for client_id in data.train.client_ids:
        for element in data.train.create_tf_dataset_for_client(client_id):
            examples.append((element["x"].numpy(), element["y"].numpy()))
            if len(examples) == count:
                return examples
    return examples


def decode_tokens(ids: np.ndarray, names: Sequence[str]) -> str:
    """Token ids as text: padding dropped; characters joined as they are, words by spaces.

    Args:
      ids: token ids (0 is padding).
      names: the vocabulary, by id.

    Returns:
      The text.
    """
    tokens = [names[i] for i in ids if i != 0]
    plain = [n for n in names[1:] if not (n.startswith("<") and n.endswith(">"))]
    return ("" if max(map(len, plain), default=1) == 1 else " ").join(tokens)


def draw_samples(overrides: Sequence[str], out: Path) -> Path:
    """The composed data set's first 25 training examples, as a picture or as text.

    Args:
      overrides: config overrides naming the data set (``dataset=mnist``).
      out: the folder to write into.

    Returns:
      The file written: ``samples.png`` (images, with their class names) or ``samples.txt``
      (token sequences, with their next-token targets).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fedlab.run import compose_config, load_dataset

    cfg = compose_config(overrides)
    data = load_dataset(cfg.dataset)
    examples = _first_examples(data)
    out.mkdir(parents=True, exist_ok=True)
    if data.task != "image_classification":
        path = out / "samples.txt"
        lines = [f"first {len(examples)} training sequences: {cfg.dataset._target_}", ""]
        for index, (x, y) in enumerate(examples, 1):
            lines += [f"{index:2d} input : {decode_tokens(x, data.class_names)!r}",
                      f"   target: {decode_tokens(y, data.class_names)!r}"]
        path.write_text("\n".join(lines) + "\n")
        return path
    fig = plt.figure(figsize=(8, 8))
    for index, (image, label) in enumerate(examples):
        axes = fig.add_subplot(5, 5, index + 1)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        axes.set_xlabel(data.class_names[int(label)])
    fig.suptitle(f"first {len(examples)} training images: {cfg.dataset._target_}")
    fig.tight_layout()
    path = out / "samples.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
