// Compares two runs' logits over the same token sequence (scripts/logits-compare.sh): per
// position the largest |difference| against the row's largest |logit|, KL(reference || other)
// over the whole vocabulary, whether both put the same token first (counted where the
// reference's top two logits are more than `tie` apart), and the perplexity of the sequence's
// own next tokens under each run.
//   logits-compare REF.f32 OTHER.f32 TOKENS.txt N_VOCAB [tie = 1e-3]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

static std::vector<float> read_all(const char* path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    const std::streamsize n = f.tellg();
    std::vector<float> v(size_t(n > 0 ? n : 0) / sizeof(float));
    f.seekg(0);
    f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
    return v;
}

static void log_softmax(const float* x, size_t n, std::vector<double>& out) {
    double m = -INFINITY;
    for (size_t i = 0; i < n; ++i) m = std::max(m, double(x[i]));
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::exp(double(x[i]) - m);
    const double l = m + std::log(s);
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = double(x[i]) - l;
}

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s REF.f32 OTHER.f32 TOKENS.txt N_VOCAB [tie]\n", argv[0]);
        return 2;
    }
    const std::vector<float> a = read_all(argv[1]), b = read_all(argv[2]);
    std::vector<int> toks;
    std::ifstream in(argv[3]);
    for (int t; in >> t;) toks.push_back(t);
    const size_t V = size_t(std::atol(argv[4]));
    const double tie = argc > 5 ? std::atof(argv[5]) : 1e-3;
    const size_t n = toks.size();
    if (V == 0 || a.size() != n * V || b.size() != n * V) {
        std::fprintf(stderr, "sizes do not match %zu tokens x %zu\n", n, V);
        return 2;
    }
    double worst_rel = 0, kl_sum = 0, kl_max = 0, nll_a = 0, nll_b = 0;
    size_t same = 0, counted = 0;
    std::vector<double> la, lb;
    for (size_t i = 0; i < n; ++i) {
        const float* x = a.data() + i * V;
        const float* y = b.data() + i * V;
        double amax = 0, dmax = 0;
        size_t ta = 0, tb = 0;
        for (size_t j = 0; j < V; ++j) {
            amax = std::max(amax, double(std::fabs(x[j])));
            dmax = std::max(dmax, double(std::fabs(x[j] - y[j])));
            if (x[j] > x[ta]) ta = j;
            if (y[j] > y[tb]) tb = j;
        }
        worst_rel = std::max(worst_rel, dmax / std::max(amax, 1e-30));
        float second = -INFINITY;
        for (size_t j = 0; j < V; ++j)
            if (j != ta) second = std::max(second, x[j]);
        if (double(x[ta]) - double(second) > tie) {
            ++counted;
            same += ta == tb;
        }
        log_softmax(x, V, la);
        log_softmax(y, V, lb);
        double kl = 0;
        for (size_t j = 0; j < V; ++j) kl += std::exp(la[j]) * (la[j] - lb[j]);
        kl_sum += kl;
        kl_max = std::max(kl_max, kl);
        if (i + 1 < n) {
            nll_a -= la[size_t(toks[i + 1])];
            nll_b -= lb[size_t(toks[i + 1])];
        }
    }
    const double ppl_a = std::exp(nll_a / double(n - 1)), ppl_b = std::exp(nll_b / double(n - 1));
    std::printf("positions %zu: max |diff| / max |logit| %.3g; KL mean %.3g max %.3g nats; same "
                "top token %zu / %zu (top two > %g apart); PPL %.6g vs %.6g (%+.4f%%)\n",
                n, worst_rel, kl_sum / double(n), kl_max, same, counted, tie, ppl_a, ppl_b,
                100.0 * (ppl_b / ppl_a - 1.0));
    return 0;
}
