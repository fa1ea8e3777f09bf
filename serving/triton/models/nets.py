"""template_net and search_net: the exported graphs behind Triton's dynamic batcher (CPU variant).

Each runs the project's ONNX Runtime backend (``runtime.backends.onnxrt.OrtBackend``: the same session
options, custom-op registration and input checks as local tracking) on the ONNX pair copied into the
model's version folder. One ``execute`` gets every request the dynamic batcher gathered: their
batches are concatenated, run as one batch, and split again.
"""
from __future__ import annotations

import numpy as np

from runtime.contract import CLS_OUTPUT, LOC_OUTPUT, SEARCH_INPUT, TEMPLATE_INPUT
from serving.triton.configs import MODELS
from serving.triton.models.common import check_repository, error_response, model_parameters, version_dir


class _Net:
    graph = ""

    def initialize(self, args):
        from runtime.backends.onnxrt import OrtBackend
        from runtime.errors import ContractError

        params = model_parameters(args)
        folder = version_dir(args)
        threads = int(params.get("threads", "0") or 0) or None
        self.backend = OrtBackend(folder / params["template_file"], folder / params["search_file"],
                                  providers=["CPUExecutionProvider"], threads=threads)
        if self.backend.meta.export_id != params.get("export_id"):
            raise ContractError(f"{folder}: the ONNX pair is export {self.backend.meta.export_id} but the "
                                f"config says {params.get('export_id')}; regenerate the repository")
        check_repository(args, params.get("export_id", ""), MODELS)
        self.spec = self.backend.spec

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        try:
            feeds = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.input_names]
                     for r in requests]
            counts = [f[0].shape[0] for f in feeds]
            batch = [np.concatenate([f[i] for f in feeds]) if len(feeds) > 1 else feeds[0][i]
                     for i in range(len(self.input_names))]
            outputs = self.run(batch)
        except Exception as err:  # a failed batch answers every request with the reason; the model lives on
            return [error_response(f"{self.name}: {type(err).__name__}: {err}") for _ in requests]
        responses, start = [], 0
        for n in counts:
            responses.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor(name, np.ascontiguousarray(out[start:start + n]))
                 for name, out in zip(self.output_names, outputs)]))
            start += n
        return responses

    def finalize(self):
        self.backend.close()


class TemplateNet(_Net):
    name = "template_net"

    def initialize(self, args):
        super().initialize(args)
        self.input_names = [TEMPLATE_INPUT]
        self.output_names = list(self.spec.kernel_names)

    def run(self, batch):
        return self.backend.run_template(batch[0]).arrays


class SearchNet(_Net):
    name = "search_net"

    def initialize(self, args):
        super().initialize(args)
        self.input_names = [SEARCH_INPUT, *self.spec.kernel_names]
        self.output_names = [CLS_OUTPUT, LOC_OUTPUT]

    def run(self, batch):
        from runtime.backends.base import Kernels

        crops, kernels = batch[0], tuple(batch[1:])
        return self.backend.run_search(crops, Kernels(crops.shape[0], kernels))
