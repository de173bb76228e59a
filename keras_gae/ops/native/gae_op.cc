// Generalized Advantage Estimation as one CPU pass over time-major [T, B]
// tensors (Schulman et al. 2015, arXiv:1506.02438, eq. 16, with the trace cut
// at episode ends as in keras_gae's docs/design.md):
//
//   next_t  = truncation_values[t] if truncated[t] (and given)
//             else values[t + 1] (bootstrap_value at t = T - 1)
//   delta_t = rewards[t] + gamma_t * (1 - terminated[t]) * next_t - values[t]
//   A_t     = delta_t + gamma_t * lambda_t * (1 - end_t) * A_{t+1},  A_T = 0
//   end_t   = terminated[t] or truncated[t]
//   A_t     = 0 where mask[t] is false, which also cuts the trace
//   returns = A + values
//
// The loop runs backwards over t with the batch dimension innermost: rows of a
// row-major [T, B] tensor are contiguous, so every input is read once and
// every output written once, in order; A_{t+1} is reread from the row of
// advantages just written. Threads split the batch dimension.
//
// The row loop is compiled for the common cases (no flags, `terminated` only;
// gamma and lambda_ constant over the batch or not) and a general case that
// reads absent flags from constant rows, each for AVX2 and for baseline
// x86-64 (chosen at load time; no FMA, so both give the same bits as the
// tf.scan path).
//
// Built on first use by keras_gae/ops/native/loader.py; no gradient is
// registered (the Python side stops gradients: both outputs are targets).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/threadpool.h"

namespace keras_gae {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace shape_inference = ::tensorflow::shape_inference;

// Row loops get an AVX2 copy next to the baseline one, picked when the
// library loads, where the compiler supports it (GCC on x86-64).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KERAS_GAE_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KERAS_GAE_CPU_CLONES
#endif

template <typename... Args>
absl::Status InvalidArgument(const Args&... pieces) {
  return absl::InvalidArgumentError(absl::StrCat(pieces...));
}

// Columns one thread processes together over all T steps. Wide blocks keep
// each row's accesses long and sequential, which the hardware prefetchers
// need (blocks of 256 or 1024 columns measured slower); the previous row of
// `values`, reread as V(s_{t+1}), still fits in L2 (8192 columns of float64
// are 64 KiB a stream).
constexpr int64_t kColumnBlock = 8192;

// Threads split the batch in groups of this many columns, so that no two
// threads write to the same 64-byte cache line of a row.
constexpr int64_t kColumnGroup = 16;

// Below this many elements per thread, handing work to another thread costs
// more than it saves (tens of microseconds of work).
constexpr int64_t kMinElementsPerThread = int64_t{1} << 15;

// A per-step coefficient (gamma or lambda_): a scalar, or a rank-2 tensor of
// shape [1 or T, 1 or B].
template <typename T>
struct Coefficient {
  const T* data = nullptr;
  int64_t row_stride = 0;  // 0 when constant over time.
  bool per_column = false;  // True when it varies over the batch.

  // The value at row t when !per_column.
  T RowValue(int64_t t) const { return data[t * row_stride]; }
  // The slice starting at column b of row t when per_column.
  const T* Row(int64_t t, int64_t b) const {
    return data + t * row_stride + b;
  }
};

// Which flags a row loop reads. kGeneral reads all three, with constant rows
// standing in for absent ones.
enum class Flags { kNone, kTerminated, kGeneral };

// One step t for `width` columns. `advantages_after` is row t + 1 of the
// advantages (zeros at t = T - 1). With kPerColumn, gamma and lambda_ are read
// from `gammas` and `lambdas`; otherwise the row's `gamma` and
// `decay` = gamma * lambda_ apply to every column. Every operand is loaded
// unconditionally and flags are read as bytes, so that (with
// -fno-trapping-math) the selects compile to vector blends.
template <typename T, Flags kFlags, bool kPerColumn>
KERAS_GAE_CPU_CLONES void StepRow(
    int64_t width, const T* __restrict__ rewards, const T* __restrict__ values,
    const T* __restrict__ next_values, const T* __restrict__ advantages_after,
    const uint8_t* __restrict__ terminated,
    const uint8_t* __restrict__ truncated,
    const T* __restrict__ truncation_values, const uint8_t* __restrict__ mask,
    const T* __restrict__ gammas, const T* __restrict__ lambdas, T gamma,
    T decay, T* __restrict__ advantages, T* __restrict__ returns) {
  for (int64_t i = 0; i < width; ++i) {
    const T value = values[i];
    const T after = advantages_after[i];
    const T gamma_i = kPerColumn ? gammas[i] : gamma;
    const T decay_i = kPerColumn ? gamma_i * lambdas[i] : decay;
    T next = next_values[i];
    bool ended = false;
    bool cut = false;
    bool valid = true;
    if constexpr (kFlags != Flags::kNone) ended = terminated[i] != 0;
    if constexpr (kFlags == Flags::kGeneral) {
      const T after_truncation = truncation_values[i];
      cut = truncated[i] != 0;
      valid = mask[i] != 0;
      next = cut ? after_truncation : next;
    }
    const T bootstrap = ended ? T(0) : next;
    const T delta = rewards[i] + gamma_i * bootstrap - value;
    const T carried = (ended | cut) ? T(0) : after;
    const T traced = delta + decay_i * carried;
    const T advantage = valid ? traced : T(0);
    advantages[i] = advantage;
    returns[i] = advantage + value;
  }
}

template <typename T>
using RowFunction = decltype(&StepRow<T, Flags::kNone, false>);

template <typename T, Flags kFlags>
RowFunction<T> SelectRow(bool per_column) {
  return per_column ? &StepRow<T, kFlags, true> : &StepRow<T, kFlags, false>;
}

template <typename T>
RowFunction<T> SelectRow(Flags flags, bool per_column) {
  switch (flags) {
    case Flags::kNone:
      return SelectRow<T, Flags::kNone>(per_column);
    case Flags::kTerminated:
      return SelectRow<T, Flags::kTerminated>(per_column);
    case Flags::kGeneral:
      break;
  }
  return SelectRow<T, Flags::kGeneral>(per_column);
}

// Pointers to the op's inputs and outputs; null for absent inputs.
template <typename T>
struct Streams {
  const T* rewards;
  const T* values;
  const T* bootstrap_value;
  const uint8_t* terminated;
  const uint8_t* truncated;
  const T* truncation_values;
  const uint8_t* mask;
  T* advantages;
  T* returns;
};

// Fills `row` with `value` unless it already holds it (it starts as zeros).
template <typename T>
const T* ConstantRow(T value, std::vector<T>* row) {
  if ((*row)[0] != value) std::fill(row->begin(), row->end(), value);
  return row->data();
}

// Columns [b_begin, b_end) over every step, last step first.
template <typename T>
void RunColumns(const Streams<T>& s, const Coefficient<T>& gamma,
                const Coefficient<T>& lambda, int64_t num_steps, int64_t batch,
                int64_t b_begin, int64_t b_end) {
  const int64_t width = b_end - b_begin;
  const bool per_column = gamma.per_column || lambda.per_column;
  Flags flags = Flags::kGeneral;
  if (!s.truncated && !s.mask) {
    flags = s.terminated ? Flags::kTerminated : Flags::kNone;
  }
  const RowFunction<T> step_row = SelectRow<T>(flags, per_column);
  // Constant rows standing in for A_T, for absent flags (general loop) and
  // for a coefficient constant over the batch when the other one is not.
  const std::vector<T> zeros(width, T(0));
  const std::vector<uint8_t> falses(width, 0);
  const std::vector<uint8_t> trues(width, 1);
  std::vector<T> gamma_row(width, T(0));
  std::vector<T> lambda_row(width, T(0));

  for (int64_t t = num_steps - 1; t >= 0; --t) {
    const int64_t offset = t * batch + b_begin;
    const T* values = s.values + offset;
    const bool last = t + 1 == num_steps;
    const T* next_values = last ? s.bootstrap_value + b_begin : values + batch;
    T* advantages = s.advantages + offset;
    const T* advantages_after = last ? zeros.data() : advantages + batch;
    const T* gammas = nullptr;
    const T* lambdas = nullptr;
    T gamma_t = T(0);
    T decay_t = T(0);
    if (per_column) {
      gammas = gamma.per_column ? gamma.Row(t, b_begin)
                                : ConstantRow(gamma.RowValue(t), &gamma_row);
      lambdas = lambda.per_column
                    ? lambda.Row(t, b_begin)
                    : ConstantRow(lambda.RowValue(t), &lambda_row);
    } else {
      gamma_t = gamma.RowValue(t);
      decay_t = gamma_t * lambda.RowValue(t);
    }
    step_row(width, s.rewards + offset, values, next_values, advantages_after,
             s.terminated ? s.terminated + offset : falses.data(),
             s.truncated ? s.truncated + offset : falses.data(),
             s.truncation_values ? s.truncation_values + offset : next_values,
             s.mask ? s.mask + offset : trues.data(), gammas, lambdas, gamma_t,
             decay_t, advantages, s.returns + offset);
  }
}

REGISTER_OP("KerasGaeGeneralizedAdvantageEstimation")
    .Input("rewards: T")
    .Input("values: T")
    .Input("bootstrap_value: T")
    .Input("terminated: bool")
    .Input("truncated: bool")
    .Input("truncation_values: T")
    .Input("mask: bool")
    .Input("gamma: T")
    .Input("lambda_: T")
    .Output("advantages: T")
    .Output("returns: T")
    .Attr("T: {float, double}")
    .Attr("has_terminated: bool = false")
    .Attr("has_truncated: bool = false")
    .Attr("has_truncation_values: bool = false")
    .Attr("has_mask: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle steps;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &steps));
      TF_RETURN_IF_ERROR(c->Merge(steps, c->input(1), &steps));
      shape_inference::ShapeHandle bootstrap;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &bootstrap));
      shape_inference::DimensionHandle batch;
      TF_RETURN_IF_ERROR(
          c->Merge(c->Dim(steps, 1), c->Dim(bootstrap, 0), &batch));
      TF_RETURN_IF_ERROR(c->ReplaceDim(steps, 1, batch, &steps));
      c->set_output(0, steps);
      c->set_output(1, steps);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Generalized Advantage Estimation on time-major [T, B] tensors (CPU only).

Inputs whose has_* attribute is false are ignored and may be any tensor of
their dtype (a scalar is enough). gamma and lambda_ are scalars or rank-2
tensors of shape [1 or T, 1 or B].
)doc");

template <typename T>
class GeneralizedAdvantageEstimationOp : public OpKernel {
 public:
  explicit GeneralizedAdvantageEstimationOp(OpKernelConstruction* context)
      : OpKernel(context) {
    OP_REQUIRES_OK(context,
                   context->GetAttr("has_terminated", &has_terminated_));
    OP_REQUIRES_OK(context, context->GetAttr("has_truncated", &has_truncated_));
    OP_REQUIRES_OK(context, context->GetAttr("has_truncation_values",
                                             &has_truncation_values_));
    OP_REQUIRES_OK(context, context->GetAttr("has_mask", &has_mask_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& rewards = context->input(0);
    const Tensor& values = context->input(1);
    const Tensor& bootstrap_value = context->input(2);
    const Tensor& terminated = context->input(3);
    const Tensor& truncated = context->input(4);
    const Tensor& truncation_values = context->input(5);
    const Tensor& mask = context->input(6);

    OP_REQUIRES(context, rewards.dims() == 2,
                InvalidArgument("`rewards` must be [T, B], got shape ",
                                rewards.shape().DebugString()));
    const TensorShape& shape = rewards.shape();
    const int64_t num_steps = shape.dim_size(0);
    const int64_t batch = shape.dim_size(1);
    auto check_steps = [&](const Tensor& tensor, const char* name) {
      OP_REQUIRES(context, tensor.shape() == shape,
                  InvalidArgument("`", name, "` must have the shape of ",
                                  "`rewards` ", shape.DebugString(), ", got ",
                                  tensor.shape().DebugString()));
    };
    check_steps(values, "values");
    if (!context->status().ok()) return;
    OP_REQUIRES(
        context,
        bootstrap_value.dims() == 1 && bootstrap_value.dim_size(0) == batch,
        InvalidArgument("`bootstrap_value` must be [B] with B = ", batch,
                        ", got shape ",
                        bootstrap_value.shape().DebugString()));
    if (has_terminated_) check_steps(terminated, "terminated");
    if (has_truncated_) check_steps(truncated, "truncated");
    if (has_truncation_values_) {
      check_steps(truncation_values, "truncation_values");
    }
    if (has_mask_) check_steps(mask, "mask");
    if (!context->status().ok()) return;

    Coefficient<T> gamma;
    Coefficient<T> lambda;
    ResolveCoefficient(context, 7, "gamma", num_steps, batch, &gamma);
    ResolveCoefficient(context, 8, "lambda_", num_steps, batch, &lambda);
    if (!context->status().ok()) return;

    // Fresh outputs, never forwarded inputs: `values` row t + 1 is still
    // read after row t + 1 of the returns is written.
    Tensor* advantages = nullptr;
    Tensor* returns = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, shape, &advantages));
    OP_REQUIRES_OK(context, context->allocate_output(1, shape, &returns));
    if (num_steps == 0 || batch == 0) return;

    Streams<T> streams;
    streams.rewards = rewards.flat<T>().data();
    streams.values = values.flat<T>().data();
    streams.bootstrap_value = bootstrap_value.flat<T>().data();
    streams.terminated = has_terminated_ ? Bytes(terminated) : nullptr;
    streams.truncated = has_truncated_ ? Bytes(truncated) : nullptr;
    streams.truncation_values =
        has_truncation_values_ && has_truncated_
            ? truncation_values.flat<T>().data()
            : nullptr;
    streams.mask = has_mask_ ? Bytes(mask) : nullptr;
    streams.advantages = advantages->flat<T>().data();
    streams.returns = returns->flat<T>().data();

    auto work = [&](int64_t group_begin, int64_t group_end) {
      const int64_t end = std::min(batch, group_end * kColumnGroup);
      for (int64_t b = group_begin * kColumnGroup; b < end; b += kColumnBlock) {
        RunColumns(streams, gamma, lambda, num_steps, batch, b,
                   std::min(end, b + kColumnBlock));
      }
    };
    const int64_t groups = (batch + kColumnGroup - 1) / kColumnGroup;
    auto* workers = context->device()->tensorflow_cpu_worker_threads();
    const int64_t threads = std::min<int64_t>(
        {static_cast<int64_t>(workers->num_threads), groups,
         num_steps * batch / kMinElementsPerThread});
    if (threads <= 1) {
      work(0, groups);
      return;
    }
    // One contiguous range of column groups per thread: more, narrower
    // shards would shorten the sequential runs within each row.
    workers->workers->ParallelFor(
        groups,
        ::tensorflow::thread::ThreadPool::SchedulingParams::Fixed(
            (groups + threads - 1) / threads),
        work);
  }

 private:
  // A bool tensor's bytes (TensorFlow stores bool as one byte, 0 or 1).
  static const uint8_t* Bytes(const Tensor& flags) {
    return reinterpret_cast<const uint8_t*>(flags.flat<bool>().data());
  }

  static void ResolveCoefficient(OpKernelContext* context, int index,
                                 const char* name, int64_t num_steps,
                                 int64_t batch, Coefficient<T>* coefficient) {
    const Tensor& tensor = context->input(index);
    coefficient->data = tensor.flat<T>().data();
    if (tensor.dims() == 0) return;
    const bool fits =
        tensor.dims() == 2 &&
        (tensor.dim_size(0) == 1 || tensor.dim_size(0) == num_steps) &&
        (tensor.dim_size(1) == 1 || tensor.dim_size(1) == batch);
    OP_REQUIRES(context, fits,
                InvalidArgument("`", name, "` must be a scalar or have shape ",
                                "[1 or T, 1 or B] with T = ", num_steps,
                                ", B = ", batch, ", got shape ",
                                tensor.shape().DebugString()));
    coefficient->per_column = tensor.dim_size(1) != 1;
    coefficient->row_stride = tensor.dim_size(0) == 1 ? 0 : tensor.dim_size(1);
  }

  bool has_terminated_ = false;
  bool has_truncated_ = false;
  bool has_truncation_values_ = false;
  bool has_mask_ = false;
};

#define KERAS_GAE_REGISTER_CPU(T)                                     \
  REGISTER_KERNEL_BUILDER(                                            \
      Name("KerasGaeGeneralizedAdvantageEstimation")                  \
          .Device(DEVICE_CPU)                                         \
          .TypeConstraint<T>("T"),                                    \
      GeneralizedAdvantageEstimationOp<T>)

KERAS_GAE_REGISTER_CPU(float);
KERAS_GAE_REGISTER_CPU(double);

#undef KERAS_GAE_REGISTER_CPU

}  // namespace
}  // namespace keras_gae
