#include "Arguments.h"

#include "fxgrad/Errors.h"

namespace fxgrad::bindings {

namespace {
/** float32 in native byte order; dtypes compare by value (an unpickled array has its own). */
bool isFloat32 (const py::array& array)
{
    return array.dtype().attr ("__eq__") (py::dtype::of<float>()).cast<bool>();
}
} // namespace

FloatArray audioArgument (const py::handle& audio, int channels, const std::string& what)
{
    if (! py::isinstance<py::array> (audio))
        fail (ErrorKind::Type, what + " must be a numpy array of float32, shaped (channels, samples); got "
                              + std::string (py::str (py::type::of (audio).attr ("__name__"))));
    auto array = py::reinterpret_borrow<py::array> (audio);
    if (! isFloat32 (array))
        fail (ErrorKind::Type, what + " must have dtype float32, got " + std::string (py::str (array.dtype())));
    if (array.ndim() != 2)
        fail (ErrorKind::Value, what + " must be 2-D (channels, samples), got " + std::to_string (array.ndim()) + "-D");
    if (array.shape (0) != channels)
        fail (ErrorKind::Value, what + " has " + std::to_string (array.shape (0)) + " channels; this plugin was loaded with channels="
                               + std::to_string (channels));
    return FloatArray::ensure (array);
}

FloatArray checkedArray (const py::handle& value, const std::string& name, std::vector<int64_t> shape, const std::string& layout)
{
    if (! py::isinstance<py::array> (value))
        fail (ErrorKind::Type, name + " must be a float32 numpy array shaped " + layout);
    auto array = py::reinterpret_borrow<py::array> (value);
    if (! isFloat32 (array))
        fail (ErrorKind::Type, name + " must have dtype float32, got " + std::string (py::str (array.dtype())));
    bool ok = array.ndim() == (py::ssize_t) shape.size();
    for (size_t i = 0; ok && i < shape.size(); ++i)
        ok = shape[i] < 0 ? array.shape ((py::ssize_t) i) > 0 : array.shape ((py::ssize_t) i) == shape[i];
    if (! ok) {
        std::string expected = "(", got = "(";
        for (size_t i = 0; i < shape.size(); ++i)
            expected += (i ? ", " : "") + (shape[i] < 0 ? std::string ("N") : std::to_string (shape[i]));
        for (py::ssize_t i = 0; i < array.ndim(); ++i)
            got += (i ? ", " : "") + std::to_string (array.shape (i));
        fail (ErrorKind::Value, name + " must be shaped " + layout + " = " + expected + "), got " + got + ")");
    }
    return FloatArray::ensure (array);
}

int64_t integerArgument (const py::handle& value, const std::string& name)
{
    if (PyBool_Check (value.ptr()) || ! PyIndex_Check (value.ptr()))
        fail (ErrorKind::Type, name + " must be an integer, got " + std::string (py::repr (value)));
    const auto number = py::reinterpret_steal<py::object> (PyNumber_Index (value.ptr()));
    if (! number)
        throw py::error_already_set();
    int overflow = 0;
    const long long result = PyLong_AsLongLongAndOverflow (number.ptr(), &overflow);
    return overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : (int64_t) result;
}

std::string bytesArgument (const py::handle& value, const std::string& name)
{
    if (py::isinstance<py::bytes> (value))
        return value.cast<std::string>();
    if (PyObject_CheckBuffer (value.ptr()) && ! py::isinstance<py::str> (value)) {
        const auto bytes = py::reinterpret_steal<py::object> (PyBytes_FromObject (value.ptr()));
        if (! bytes)
            throw py::error_already_set();
        return bytes.cast<std::string>();
    }
    fail (ErrorKind::Type, name + " must be bytes (a Plugin.state), got "
                          + py::type::of (value).attr ("__name__").cast<std::string>());
}

} // namespace fxgrad::bindings
