// llm8-server's request layer without HTTP: parsing and validation of the OpenAI bodies
// (tools/server/request.*), stop strings over streamed text (stop_strings.*), the shapes of the
// answers (response.*), and the API key comparison.
#include <string>
#include <vector>

#include "server/request.h"
#include "server/response.h"
#include "server/stop_strings.h"
#include "test_util.h"

using namespace llm8_server;
using json = nlohmann::json;

namespace {

Limits limits() {
    Limits l;
    l.n_vocab = 512;
    l.max_tokens = 256;
    l.max_n = 4;
    return l;
}

GenRequest chat(const std::string& body) {
    return parse_chat_request(body, limits(), Defaults{});
}

// The ApiError a body gives (status 0 when it parses).
ApiError chat_error(const std::string& body) {
    try {
        chat(body);
    } catch (const ApiError& e) {
        return e;
    }
    return ApiError(0, "");
}

const char* kMsgs =
    R"("messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}])";

}  // namespace

TEST(ServerRequest, ChatFieldsAreRead) {
    const GenRequest r = chat(std::string("{") + kMsgs +
                              R"(,"model":"m","max_tokens":12,"temperature":0.5,"top_p":0.9,
        "top_k":7,"min_p":0.1,"seed":42,"stop":["\n","END"],"presence_penalty":0.5,
        "frequency_penalty":-0.5,"logit_bias":{"3":-100,"7":2.5},"logprobs":true,
        "top_logprobs":3,"n":2,"stream":true,"stream_options":{"include_usage":true},
        "user":"u","max_completion_tokens":null})");
    EXPECT_EQ(r.endpoint, Endpoint::chat);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "Hi");
    EXPECT_EQ(r.max_tokens, 12);
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.top_k, 7);
    EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
    EXPECT_EQ(r.sampling.seed, 42u);
    EXPECT_TRUE(r.seed_given);
    EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
    EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -0.5f);
    EXPECT_FLOAT_EQ(r.sampling.logit_bias.at(3), -100.0f);
    EXPECT_FLOAT_EQ(r.sampling.logit_bias.at(7), 2.5f);
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 3);
    EXPECT_EQ(r.n, 2);
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
}

TEST(ServerRequest, DefaultsComeFromTheServer) {
    Defaults d;
    d.sampling.temperature = 0.0f;
    d.sampling.seed = 9;
    d.seed_fixed = true;
    d.max_tokens = 33;
    const GenRequest r = parse_chat_request(std::string("{") + kMsgs + "}", limits(), d);
    EXPECT_EQ(r.sampling.temperature, 0.0f);
    EXPECT_EQ(r.sampling.seed, 9u);
    EXPECT_TRUE(r.seed_given);
    EXPECT_EQ(r.max_tokens, 33);
    EXPECT_EQ(r.n, 1);
    EXPECT_FALSE(r.stream);
    // Content parts and the developer role.
    const GenRequest p = chat(R"({"messages":[{"role":"developer","content":[{"type":"text",
        "text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null}]})");
    EXPECT_EQ(p.messages[0].role, "system");
    EXPECT_EQ(p.messages[0].content, "ab");
    EXPECT_EQ(p.messages[1].content, "");
}

TEST(ServerRequest, BadBodiesAreClearErrors) {
    struct Case {
        std::string body, param, what;
    };
    const std::string m = kMsgs;
    const std::vector<Case> cases = {
        {"", "", "empty"},
        {"{", "", "invalid JSON"},
        {"[1,2]", "", "JSON object"},
        {"\"x\"", "", "JSON object"},
        {"{}", "messages", "required"},
        {R"({"messages":"hi"})", "messages", "array"},
        {R"({"messages":[]})", "messages", "at least one"},
        {R"({"messages":[1]})", "messages", "object"},
        {R"({"messages":[{"content":"x"}]})", "messages.role", "role"},
        {R"({"messages":[{"role":"tool","content":"x"}]})", "messages.role", "not supported"},
        {R"({"messages":[{"role":"user","content":5}]})", "messages.content", "string"},
        {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages.content",
         "image_url"},
        {R"({"messages":[{"role":"user"}]})", "messages.content", "needs content"},
        {"{" + m + R"(,"max_tokens":-1})", "max_tokens", "from 1 to 256"},
        {"{" + m + R"(,"max_tokens":0})", "max_tokens", "from 1 to 256"},
        {"{" + m + R"(,"max_tokens":1e300})", "max_tokens", "integer"},
        {"{" + m + R"(,"max_tokens":99999999999999999999999})", "max_tokens", "integer"},
        {"{" + m + R"(,"max_tokens":18446744073709551615})", "max_tokens", "integer"},
        {"{" + m + R"(,"max_tokens":"12"})", "max_tokens", "expected an integer"},
        {"{" + m + R"(,"max_tokens":1.5})", "max_tokens", "integer"},
        {"{" + m + R"(,"temperature":-1})", "temperature", "from 0 to 2"},
        {"{" + m + R"(,"temperature":"hot"})", "temperature", "number"},
        {"{" + m + R"(,"top_p":1.5})", "top_p", "from 0 to 1"},
        {"{" + m + R"(,"n":5})", "n", "from 1 to 4"},
        {"{" + m + R"(,"stream":"yes"})", "stream", "boolean"},
        {"{" + m + R"(,"stop":[1]})", "stop", "string"},
        {"{" + m + R"(,"stop":["a","b","c","d","e","f","g","h","i"]})", "stop", "at most"},
        {"{" + m + R"(,"logit_bias":{"x":1}})", "logit_bias", "token id"},
        {"{" + m + R"(,"logit_bias":{"512":1}})", "logit_bias", "token id"},
        {"{" + m + R"(,"logit_bias":{"-1":1}})", "logit_bias", "token id"},
        {"{" + m + R"(,"logit_bias":{"3":1000}})", "logit_bias", "from -100 to 100"},
        {"{" + m + R"(,"logit_bias":[1]})", "logit_bias", "object"},
        {"{" + m + R"(,"top_logprobs":3})", "top_logprobs", "logprobs"},
        {"{" + m + R"(,"logprobs":true,"top_logprobs":21})", "top_logprobs", "from 0 to 20"},
        {"{" + m + R"(,"seed":"x"})", "seed", "integer"},
        {"{" + m + R"(,"stream_options":{"include_usage":true}})", "stream_options", "stream"},
        {"{" + m + R"(,"tools":[{"type":"function"}]})", "tools", "not supported"},
        {"{" + m + R"(,"response_format":{"type":"json_object"}})", "response_format", "text"},
        {"{" + m + R"(,"frobnicate":1})", "frobnicate", "unrecognized"},
        {"{" + m + R"(,"messages":"dup"})", "messages", "array"},
        {std::string(100, '[') + std::string(100, ']'), "", "nested"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", "", "invalid JSON"},
        {R"({"messages":[{"role":"user","content":"\ud800"}]})", "", "invalid JSON"},
    };
    for (const Case& c : cases) {
        const ApiError e = chat_error(c.body);
        EXPECT_EQ(e.status, 400) << c.body;
        EXPECT_EQ(e.type, "invalid_request_error") << c.body;
        EXPECT_EQ(e.param, c.param) << c.body;
        EXPECT_NE(e.message.find(c.what), std::string::npos) << c.body << " -> " << e.message;
    }
}

TEST(ServerRequest, Completions) {
    const Limits l = limits();
    GenRequest r =
        parse_completion_request(R"({"prompt":"Once","logprobs":2,"echo":false})", l, Defaults{});
    EXPECT_EQ(r.endpoint, Endpoint::completion);
    EXPECT_EQ(r.prompt, "Once");
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 2);
    r = parse_completion_request(R"({"prompt":[1,2,3]})", l, Defaults{});
    EXPECT_TRUE(r.prompt_is_tokens);
    EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
    r = parse_completion_request(R"({"prompt":["text"]})", l, Defaults{});
    EXPECT_EQ(r.prompt, "text");
    for (const char* body : {R"({})", R"({"prompt":5})", R"({"prompt":[]})",
                             R"({"prompt":["a","b"]})", R"({"prompt":[1,512]})",
                             R"({"prompt":"x","echo":true})", R"({"prompt":"x","logprobs":6})",
                             R"({"prompt":"x","messages":[]})", R"({"prompt":"x","best_of":2})"}) {
        EXPECT_THROW(parse_completion_request(body, l, Defaults{}), ApiError) << body;
    }
}

TEST(ServerRequest, TokenizeAndDetokenize) {
    const Limits l = limits();
    const TokenizeRequest t =
        parse_tokenize_request(R"({"content":"hi","add_special":true,"with_pieces":true})", l);
    EXPECT_EQ(t.content, "hi");
    EXPECT_TRUE(t.add_special);
    EXPECT_TRUE(t.with_pieces);
    EXPECT_EQ(parse_detokenize_request(R"({"tokens":[1,511]})", l), (std::vector<int32_t>{1, 511}));
    EXPECT_THROW(parse_tokenize_request(R"({"content":1})", l), ApiError);
    EXPECT_THROW(parse_tokenize_request(R"({})", l), ApiError);
    EXPECT_THROW(parse_detokenize_request(R"({"tokens":[512]})", l), ApiError);
    EXPECT_THROW(parse_detokenize_request(R"({"tokens":[-1]})", l), ApiError);
    EXPECT_THROW(parse_detokenize_request(R"({"tokens":"1"})", l), ApiError);
}

TEST(ServerRequest, ApiKeyComparison) {
    EXPECT_TRUE(constant_time_equal("secret", "secret"));
    EXPECT_FALSE(constant_time_equal("secreT", "secret"));
    EXPECT_FALSE(constant_time_equal("secret1", "secret"));
    EXPECT_FALSE(constant_time_equal("secre", "secret"));
    EXPECT_FALSE(constant_time_equal("", "secret"));
    EXPECT_FALSE(constant_time_equal("secretsecret", "secret"));
    EXPECT_TRUE(constant_time_equal("", ""));
}

TEST(StopStrings, HoldBackAPossibleStartAndCutAtTheStop) {
    StopMatcher m({"END", "\n\n"});
    EXPECT_EQ(m.push("Hello E"), "Hello ");  // "E" may start END
    EXPECT_EQ(m.push("N"), "");
    EXPECT_EQ(m.push("Ds"), "");  // ...it did
    EXPECT_TRUE(m.stopped());
    EXPECT_EQ(m.push("more"), "");
    EXPECT_EQ(m.flush(), "");

    StopMatcher a({"END"});
    EXPECT_EQ(a.push("ENx"), "ENx");  // not a stop after all
    EXPECT_EQ(a.push("abcEN"), "abc");
    EXPECT_EQ(a.flush(), "EN");  // end of text: the held tail goes out
    EXPECT_FALSE(a.stopped());

    StopMatcher b({"ab", "b"});
    EXPECT_EQ(b.push("xab"), "x");  // the earliest stop wins
    EXPECT_TRUE(b.stopped());

    StopMatcher none({});
    EXPECT_EQ(none.push("anything"), "anything");
    EXPECT_EQ(none.flush(), "");
}

TEST(ServerResponse, ShapesFollowOpenAI) {
    ResponseMeta meta{"chatcmpl-1", 123, "m"};
    ChoiceText c;
    c.text = "hi";
    c.finish_reason = "stop";
    c.logprobs.push_back({"hi", -0.5f, {{"hi", -0.5f}, {"yo", -1.5f}}});
    Usage u{5, 1, 3};
    const json chat = chat_response(meta, {c}, u, true);
    EXPECT_EQ(chat["object"], "chat.completion");
    EXPECT_EQ(chat["choices"][0]["message"]["content"], "hi");
    EXPECT_EQ(chat["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(chat["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1]["token"], "yo");
    EXPECT_EQ(chat["usage"]["total_tokens"], 6);
    EXPECT_EQ(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    const json cmpl = completion_response(meta, {c}, u, true);
    EXPECT_EQ(cmpl["object"], "text_completion");
    EXPECT_EQ(cmpl["choices"][0]["text"], "hi");
    EXPECT_FLOAT_EQ(cmpl["choices"][0]["logprobs"]["top_logprobs"][0]["yo"].get<float>(), -1.5f);
    c.finish_reason.clear();
    const json chunk = chat_chunk(meta, c, true, false);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    EXPECT_EQ(usage_chunk(meta, true, u)["choices"].size(), 0u);
    EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
    // Bytes that are not UTF-8 (a character cut at the end of a stream) do not throw.
    EXPECT_NO_THROW(dump(json{{"t", std::string("\xe2\x82")}}));
    const json err = json::parse(error_json(ApiError(400, "bad", "x")));
    EXPECT_EQ(err["error"]["message"], "bad");
    EXPECT_EQ(err["error"]["type"], "invalid_request_error");
    EXPECT_EQ(err["error"]["param"], "x");
    EXPECT_TRUE(err["error"]["code"].is_null());
    MetricsSnapshot ms;
    ms.kv_blocks_used = 7;
    EXPECT_NE(prometheus_text(ms).find("\nllm8_kv_blocks_used 7\n"), std::string::npos);
}
