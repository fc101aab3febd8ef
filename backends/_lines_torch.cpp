// The layer's AR solve on CPU tensors as one compiled autograd node: arma_core.backends._lines_torch.
//
// What arma_core.backends.torch._LinesTheta does in Python (the line solver's forward and
// backward kernels, theta's gradient through the reparameterization's Jacobian), with the same
// kernels (the capsule of arma_core.backends._lines_c, backends/_lines_c_api.h) called on the
// same buffers in the same order: its results are _LinesTheta's bit for bit. A layer's small
// solve costs a few tens of microseconds of kernels; torch's Python autograd.Function machinery
// and the Python steps around the kernels cost more than that inside a training step, and this
// node has neither.
//
// It allocates no large buffer it can avoid: with own (a layer's convolution output, which
// nothing else refers to) the forward writes into its input, and the backward writes the
// input's gradient into the incoming gradient's buffer when it holds the only reference to it.
// Under glibc's default heap settings each fresh buffer of a step can come back as page faults.
//
// Optional: setup.py builds it only where torch is importable at build time (not in pip's
// isolated build: the Makefile builds it after installing torch), against that torch's headers.
// arma_core.backends.torch loads it only when its TORCH_VERSION is the running torch's and its
// API version matches the line solver's; otherwise _LinesTheta runs.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/functions/basic_ops.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <atomic>
#include <string>

#include "_lines_c_api.h"

namespace py = pybind11;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

const LinesCApi *api = nullptr;

// A Python object (a plan: bytes) kept alive by a node until it is freed (with the GIL).
struct PyRef : torch::CustomClassHolder {
    PyObject *obj;
    explicit PyRef(PyObject *o) : obj(o) { Py_INCREF(o); }
    ~PyRef() override {
        if (!Py_IsInitialized()) return;
        py::gil_scoped_acquire gil;
        Py_DECREF(obj);
    }
};

void check(int code) {
    if (code == LINES_NO_MEMORY) throw std::bad_alloc();
    if (code) throw py::value_error(api->message(code));
}

int64_t blocks(const at::Tensor &t, int64_t k) {
    int64_t P = 1;
    for (int64_t i = 0; i < t.dim() - k; i++) P *= t.size(i);
    return P;
}

at::Tensor fresh_like(const at::Tensor &t) {
    at::Tensor out = at::empty_like(t, at::MemoryFormat::Contiguous);
    api->advise_hugepages(out.data_ptr(), out.nbytes());
    return out;
}

// The kernels' parts on torch's intra-op threads (LinesRunner): after the convolution before a
// layer's solve (and before its backward) these threads are still awake, and threads started by
// the line solver itself would compete with them for the cores (on two cores: an ARMA2d step at
// 4x64x16x16 took 2.2-3.4x Conv2d's with two torch threads, against 1.15-1.4x with one). Inside a
// parallel region (a caller's at::parallel_for) the parts run one after the other.
void run_on_torch_threads(const LinesRunner *, lines_work_fn fn, void *ctx, int64_t n, int parts) {
    at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; t++) fn(ctx, n * t / parts, n * (t + 1) / parts, (int)t);
    });
}

const LinesRunner TORCH_THREADS = {run_on_torch_threads};

// backward calls that wrote the input's gradient into the incoming gradient's buffer (for tests
// and diagnostics: _lines_torch.reused_gradients())
std::atomic<int64_t> reused{0};

const char *const TWICE = "trying to differentiate twice a function that was marked with @once_differentiable";

}  // namespace

namespace arma {  // the node's name in graphs: torch::autograd::CppNode<arma::LinesTheta>

struct LinesTheta : public torch::autograd::Function<LinesTheta> {
    // t (..., C, n_1 .. n_k) float32 / float64; theta's taps' Jacobian jac (C, k, Q, 3, m) in
    // theta's dtype; plan / back: the line solver's plans of the forward and the backward solve
    static at::Tensor forward(AutogradContext *ctx, const at::Tensor &t_in, const at::Tensor &theta, PyObject *plan,
                              PyObject *back, const at::Tensor &jac, int64_t k, bool adjoint, bool own) {
        (void)theta;  // an input for autograd only: its gradient comes from jac
        at::Tensor t = t_in.contiguous();
        // the solve reads each block into its work copy before it writes any of it, so it can
        // write into its input: a contiguous copy made here, or the input itself when the
        // caller owns it (own: a tensor nothing else refers to, as a layer's convolution output)
        // (not a view: marked dirty, a view's output would be rebased onto its base; not a leaf
        // that needs a gradient: autograd refuses to change those in place)
        bool copied = !t.is_same(t_in);
        own = own && !copied && !t_in.is_view() && !(t_in.is_leaf() && t_in.requires_grad());
        at::Tensor out = (copied || own) ? t : fresh_like(t);
        bool f32 = t.scalar_type() == at::kFloat;
        if (t.numel()) {
            int code;
            {
                py::gil_scoped_release nogil;
                code = api->solve(PyBytes_AS_STRING(plan), (size_t)PyBytes_GET_SIZE(plan), t.data_ptr(), t.nbytes(), f32,
                                  out.data_ptr(), out.nbytes(), f32, blocks(t, k), adjoint, at::get_num_threads(),
                                  &TORCH_THREADS);
            }
            check(code);
        }
        if (own) ctx->mark_dirty({t_in});
        ctx->save_for_backward({out});
        ctx->saved_data["jac"] = jac;
        ctx->saved_data["back"] = at::IValue::make_capsule(c10::make_intrusive<PyRef>(back));
        ctx->saved_data["k"] = k;
        ctx->saved_data["adjoint"] = adjoint;
        return out;
    }

    // as _LinesTheta.backward (under _first_order): the backward solve always, the taps'
    // gradient and theta's only when theta needs it; no GIL is held here
    static tensor_list backward(AutogradContext *ctx, tensor_list &grads) {
        at::Tensor y = ctx->get_saved_variables()[0];
        at::Tensor g = grads[0].contiguous();
        // the incoming gradient's buffer is the node's when nothing else refers to it (the
        // engine moves it into grads; a retained or hooked gradient has other references)
        bool take = false;
        if (!g.requires_grad()) {
            if (!g.is_same(grads[0])) {
                take = true;  // a contiguous copy made here
            } else if (g.storage_offset() == 0 && g.nbytes() == g.storage().nbytes()) {
                grads[0].reset();
                take = g.use_count() == 1 && g.storage().use_count() == 1;
            }
        }
        at::Tensor jac = ctx->saved_data["jac"].toTensor();
        auto back = c10::static_intrusive_pointer_cast<PyRef>(ctx->saved_data["back"].toCapsule());
        int64_t k = ctx->saved_data["k"].toInt();
        bool adjoint = ctx->saved_data["adjoint"].toBool();
        bool need_theta = ctx->needs_input_grad(1);
        bool f32 = g.scalar_type() == at::kFloat;
        at::Tensor gx = take ? g : fresh_like(g);
        if (take) reused.fetch_add(1, std::memory_order_relaxed);
        at::Tensor gtaps = at::zeros(jac.sizes().slice(0, jac.dim() - 1), at::TensorOptions().dtype(at::kDouble));
        if (g.numel())
            check(api->vjp(PyBytes_AS_STRING(back->obj), (size_t)PyBytes_GET_SIZE(back->obj), y.data_ptr(), g.data_ptr(),
                           gx.data_ptr(), gx.nbytes(), gtaps.data_ptr<double>(), gtaps.nbytes(), blocks(g, k), f32,
                           adjoint, need_theta, at::get_num_threads(), &TORCH_THREADS));
        at::Tensor gtheta;
        if (need_theta) {
            std::vector<int64_t> shape(jac.sizes().begin(), jac.sizes().end() - 2);
            int64_t m = jac.size(-1);
            shape.push_back(m);
            gtheta = at::empty(shape, jac.options());
            api->theta_grad(gtaps.data_ptr<double>(), jac.data_ptr(), gtheta.data_ptr(), gtaps.numel() / 3, m,
                            jac.scalar_type() == at::kFloat);
        }
        tensor_list out = {ctx->needs_input_grad(0) ? gx : at::Tensor(), gtheta};
        if (at::GradMode::is_enabled() && g.requires_grad()) {
            // create_graph: like torch.autograd.function.once_differentiable, results whose
            // own backward raises
            tensor_list fake;
            for (auto &v : out) fake.push_back(v.defined() ? v.detach().requires_grad_(true) : v);
            out = torch::autograd::DelayedError(TWICE, 2).apply(std::move(fake));
        }
        return {out[0], out[1], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }
};

}  // namespace arma

namespace {

// A C-contiguous buffer of a Python object (numpy array), writable when asked: what the line
// solver's own solve and vjp take ("y*" / "w*")
struct Buffer {
    Py_buffer view;
    Buffer(const py::object &obj, bool writable) {
        if (PyObject_GetBuffer(obj.ptr(), &view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) != 0)
            throw py::error_already_set();
    }
    ~Buffer() { PyBuffer_Release(&view); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    size_t len() const { return (size_t)view.len; }
};

// _lines_c.solve / _lines_c.vjp (same arguments, same checks and results) with the parts of the
// work on torch's threads: for the solves of torch tensors outside this node (the layers'
// forward under no_grad, solves with taps given as a tensor)
void solve_buffers(const py::object &src, const py::object &dst, const py::bytes &plan, long long P, bool sf32,
                   bool df32, bool rev, int threads) {
    Buffer s(src, false), d(dst, true);
    int code;
    {
        py::gil_scoped_release nogil;
        code = api->solve(PyBytes_AS_STRING(plan.ptr()), (size_t)PyBytes_GET_SIZE(plan.ptr()), s.view.buf, s.len(),
                          sf32, d.view.buf, d.len(), df32, P, rev, threads, &TORCH_THREADS);
    }
    check(code);
}

void vjp_buffers(const py::object &y, const py::object &g, const py::object &w, const py::object &gtaps,
                 const py::bytes &plan, long long P, bool f32, bool adjoint, bool need_taps, int threads) {
    Buffer yb(y, false), gb(g, false), wb(w, true), tb(gtaps, true);
    int code = LINES_BAD_SIZES;
    if (yb.len() == gb.len() && yb.len() == wb.len()) {
        py::gil_scoped_release nogil;
        code = api->vjp(PyBytes_AS_STRING(plan.ptr()), (size_t)PyBytes_GET_SIZE(plan.ptr()), yb.view.buf, gb.view.buf,
                        wb.view.buf, wb.len(), (double *)tb.view.buf, tb.len(), P, f32, adjoint, need_taps, threads,
                        &TORCH_THREADS);
    }
    check(code);
}

at::Tensor solve_theta(const at::Tensor &t, const at::Tensor &theta, py::bytes plan, py::bytes back,
                       const at::Tensor &jac, int64_t k, bool adjoint, bool own) {
    return arma::LinesTheta::apply(t, theta, plan.ptr(), back.ptr(), jac, k, adjoint, own);
}

}  // namespace

PYBIND11_MODULE(_lines_torch, m) {
    m.doc() = "The layer's AR solve on CPU tensors as one compiled autograd node (see arma_core.backends.torch).";
    py::module_::import("arma_core.backends._lines_c");
    api = static_cast<const LinesCApi *>(PyCapsule_Import(LINES_C_API_CAPSULE, 0));
    if (!api) throw py::error_already_set();
    m.attr("API_VERSION") = api->version;  // the line solver's: the loader compares it with LINES_C_API_VERSION
    m.attr("BUILT_API_VERSION") = LINES_C_API_VERSION;
    m.attr("TORCH_VERSION") = ARMA_TORCH_VERSION;
    // the interface of this module's functions (arma_core.backends.torch.NODE_VERSION); 2:
    // solve_theta's own, reused_gradients
    m.attr("NODE_VERSION") = 2;
#ifdef INTRA_OP_PARALLEL
    m.attr("ON_TORCH_THREADS") = true;  // at::parallel_for splits the kernels' parts over torch's threads
#else
    m.attr("ON_TORCH_THREADS") = false;  // built without OpenMP: at::parallel_for runs them in turn
#endif
    m.def("solve_theta", &solve_theta, py::arg("t"), py::arg("theta"), py::arg("plan"), py::arg("back"),
          py::arg("jac"), py::arg("k"), py::arg("adjoint"), py::arg("own") = false,
          "solve_theta(t, theta, plan, back, jac, k, adjoint, own=False) -> y: A^{-1} t (A^{-T} t when adjoint) as one "
          "autograd node from (t, theta), the line solver's plans given (forward, backward) and theta's taps' "
          "Jacobian jac (C, k, Q, 3, m)");
    m.def(
        "reused_gradients", [] { return reused.load(); },
        "reused_gradients() -> int: how many backward calls so far wrote the input's gradient into the buffer of "
        "the incoming gradient, which nothing else held");
    m.def("solve", &solve_buffers, py::arg("src"), py::arg("dst"), py::arg("plan"), py::arg("P"), py::arg("src_f32"),
          py::arg("dst_f32"), py::arg("rev"), py::arg("threads"),
          "solve(src, dst, plan, P, src_f32, dst_f32, rev, threads): arma_core.backends._lines_c.solve with its "
          "work on torch's threads");
    m.def("vjp", &vjp_buffers, py::arg("y"), py::arg("g"), py::arg("w"), py::arg("gtaps"), py::arg("plan"),
          py::arg("P"), py::arg("f32"), py::arg("adjoint"), py::arg("need_taps"), py::arg("threads"),
          "vjp(y, g, w, gtaps, plan, P, f32, adjoint, need_taps, threads): arma_core.backends._lines_c.vjp with "
          "its work on torch's threads");
}
