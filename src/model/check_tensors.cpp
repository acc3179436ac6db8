// --check-tensors (see check_tensors.h). Rows are dequantized in parallel; the smallest bad
// row of a tensor is reported so that the message does not depend on thread timing.
#include "model/check_tensors.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "gguf/quants.h"

namespace llm8 {

void check_tensor_data(const GgufFile& f, const std::function<void(uint64_t, uint64_t)>& progress) {
    uint64_t total = 0, done = 0;
    for (const auto& t : f.tensors()) total += t.nbytes;
    for (const auto& t : f.tensors()) {
        const TypeTraits* tt = type_traits(t.type);
        if (!tt || !tt->supported)
            fail(ErrorKind::unsupported, f.path() + ": --check-tensors: tensor '" + t.name +
                                             "' has type " + (tt ? tt->name : "unknown") +
                                             ", which llm8 cannot read");
        const int64_t ne0 = t.ne.empty() ? 1 : t.ne[0], rows = t.nrows();
        const size_t rb = row_size(t.type, ne0);
        int64_t bad_row = INT64_MAX, bad_col = 0;
        float bad_value = 0;
#pragma omp parallel
        {
            std::vector<float> row(static_cast<size_t>(ne0));
#pragma omp for schedule(static)
            for (int64_t r = 0; r < rows; ++r) {
                dequantize_row(t.type, t.data + size_t(r) * rb, row.data(), ne0);
                for (int64_t c = 0; c < ne0; ++c) {
                    if (std::isfinite(row[size_t(c)])) continue;
#pragma omp critical(llm8_check_tensors)
                    if (r < bad_row) {
                        bad_row = r;
                        bad_col = c;
                        bad_value = row[size_t(c)];
                    }
                    break;
                }
            }
        }
        if (bad_row != INT64_MAX) {
            std::string where;
            if (t.name.rfind("blk.", 0) == 0)
                where = " (layer " + t.name.substr(4, t.name.find('.', 4) - 4) + ")";
            fail(ErrorKind::format, f.path() + ": tensor '" + t.name + "'" + where + " holds " +
                                        (std::isnan(bad_value) ? "a NaN" : "an infinite value") +
                                        " at row " + std::to_string(bad_row) + ", column " +
                                        std::to_string(bad_col) +
                                        ": the file is corrupt (download or convert it again)");
        }
        done += t.nbytes;
        if (progress) progress(done, total);
    }
}

}  // namespace llm8
