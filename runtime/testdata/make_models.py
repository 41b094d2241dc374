"""Writes the small classifiers that runtime's tests evaluate.

Run from this directory with Debian's python3-onnx (onnx 1.12):

    /usr/bin/python3 make_models.py

Every model is a linear classifier, logits = flatten(x) @ W + b, over 28x28
images with weights W[i][k] = ((7*i + 13*k) % 5 - 2) / 4 and
b[k] = ((k % 3) - 1) / 2. The values are quarters and halves so that, for
inputs of zeros and ones, every logit is exact in float32 whatever the
summation order: the tests recompute them in Go and expect the same argmax
and loss. The models differ only in how they take their input and what
they output:

    linear_nchw.onnx    x [N,1,28,28], N symbolic -> logits [N,10]
    linear_flat64.onnx  x [64,784], batch fixed at 64 -> logits [64,10]
    linear_hw1.onnx     x [1,28,28], batch fixed at 1 -> logits [1,10]
    linear_two_out.onnx x [N,784] -> logits [N,12], probs [N,12] (softmax)
    wrong_input.onnx    x [N,3,32,32] -> channel means -> logits [N,10]
                        (cannot take MNIST)
    wrong_output.onnx   x [N,784] -> logits [N,5]      (too few classes)

Three more models exercise Run rather than Evaluate:

    identity_string.onnx  y = x for a string tensor x [N]
    shapes.onnx           x [3,4], s [2] -> relu(x) with no declared shape
                          (ORT infers [3,4]), reshape(x, s) with no declared
                          shape (known only when run), and sum(x) declared
                          as a scalar
    undeclared_scalar.onnx  x [3,4] -> sum(x), a scalar not declared as one
"""

import onnx
from onnx import TensorProto, helper

PIXELS = 28 * 28


def weights(classes):
    w = [((7 * i + 13 * k) % 5 - 2) / 4 for i in range(PIXELS) for k in range(classes)]
    b = [((k % 3) - 1) / 2 for k in range(classes)]
    return (
        helper.make_tensor("W", TensorProto.FLOAT, [PIXELS, classes], w),
        helper.make_tensor("b", TensorProto.FLOAT, [classes], b),
    )


def save(name, in_shape, classes=10, flatten=True, softmax=False, pool=False):
    batch = in_shape[0]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])
    outputs = [logits]
    nodes = []
    src = "x"
    w, b = weights(classes)
    if pool:  # channel means, to keep a model for other images small
        nodes.append(helper.make_node("GlobalAveragePool", ["x"], ["pooled"]))
        src = "pooled"
        w = helper.make_tensor("W", TensorProto.FLOAT, [in_shape[1], classes], [0.25] * in_shape[1] * classes)
    if flatten:
        nodes.append(helper.make_node("Flatten", [src], ["flat"], axis=1))
        src = "flat"
    nodes.append(helper.make_node("Gemm", [src, "W", "b"], ["logits"]))
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
        outputs.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, classes]))
    graph = helper.make_graph(nodes, name.removesuffix(".onnx"), [x], outputs, [w, b])
    model = helper.make_model(graph, producer_name="hyperrep runtime/testdata/make_models.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, name)


save("linear_nchw.onnx", ["N", 1, 28, 28])
save("linear_flat64.onnx", [64, PIXELS], flatten=False)
save("linear_hw1.onnx", [1, 28, 28])
save("linear_two_out.onnx", ["N", PIXELS], classes=12, flatten=False, softmax=True)
save("wrong_input.onnx", ["N", 3, 32, 32], pool=True)
save("wrong_output.onnx", ["N", PIXELS], classes=5, flatten=False)


def save_graph(name, nodes, inputs, outputs):
    graph = helper.make_graph(nodes, name.removesuffix(".onnx"), inputs, outputs)
    model = helper.make_model(graph, producer_name="hyperrep runtime/testdata/make_models.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    # onnx 1.12's checker insists on output shapes, which ORT does not and
    # which two of these models leave out on purpose.
    if all(o.type.tensor_type.HasField("shape") for o in outputs):
        onnx.checker.check_model(model)
    onnx.save(model, name)


def value(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


save_graph("identity_string.onnx", [helper.make_node("Identity", ["x"], ["y"])],
           [value("x", TensorProto.STRING, ["N"])], [value("y", TensorProto.STRING, ["N"])])
save_graph("shapes.onnx",
           [helper.make_node("Relu", ["x"], ["relu"]),
            helper.make_node("Reshape", ["x", "s"], ["reshaped"]),
            helper.make_node("ReduceSum", ["x"], ["sum"], keepdims=0)],
           [value("x", TensorProto.FLOAT, [3, 4]), value("s", TensorProto.INT64, [2])],
           [value("relu", TensorProto.FLOAT, None), value("reshaped", TensorProto.FLOAT, None),
            value("sum", TensorProto.FLOAT, [])])
save_graph("undeclared_scalar.onnx", [helper.make_node("ReduceSum", ["x"], ["sum"], keepdims=0)],
           [value("x", TensorProto.FLOAT, [3, 4])], [value("sum", TensorProto.FLOAT, None)])
