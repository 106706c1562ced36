// The claim evaluator: metrics.jsonl reading, run matching through the config reader, step and
// layer/head selection, PASS / FAIL / ERROR, and the verdict table.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "experiments/engine/claims.h"
#include "tests/support/fixtures.h"
#include "train/formats/safetensors.h"

using namespace attnlab;
using namespace attnlab::testing;
namespace fs = std::filesystem;

namespace {

std::string probe(int step, const char* metric, int layer, int head, const char* value, int index = -1) {
  return "{\"step\":" + std::to_string(step) + ",\"kind\":\"probe\",\"metric\":\"" + metric + "\",\"layer\":" +
         std::to_string(layer) + ",\"head\":" + std::to_string(head) + ",\"index\":" + std::to_string(index) +
         ",\"value\":" + value + "}\n";
}

std::string train(int step, const char* loss) {
  return "{\"step\":" + std::to_string(step) + ",\"kind\":\"train\",\"loss\":" + loss +
         ",\"lr\":0.001,\"grad_norm\":1.5,\"clipped\":false,\"tokens_per_s\":1000.0,\"ms_per_step\":2.000}\n";
}

// Two runs that differ in optim.lr, with hand-written metrics.
struct TwoRuns {
  TempDir dir{"claims"};
  std::vector<ClaimRun> runs;
  TwoRuns() {
    RunConfig a = tiny_run_config(), b = tiny_run_config();
    a.optim.lr = 0.01f;
    b.optim.lr = 0.1f;
    fs::create_directories(dir.file("a"));
    fs::create_directories(dir.file("b"));
    dir.write("a/metrics.jsonl", train(1, "3.5") + train(2, "3.0") + probe(10, "zabsmax", 0, 0, "2.0") +
                                     probe(10, "zabsmax", 0, 1, "1.0") + probe(10, "zabsmax", 0, -1, "2.0") +
                                     probe(20, "zabsmax", 0, 0, "3.0") + probe(20, "zabsmax", 0, 1, "3.2") +
                                     probe(20, "zabsmax", 0, -1, "3.2") + probe(20, "ent_norm", 1, 2, "\"nan\"") +
                                     "{\"step\":20,\"kind\":\"eval\",\"val_loss\":2.75}\n");
    dir.write("b/metrics.jsonl", probe(10, "zabsmax", 0, -1, "150") + probe(20, "zabsmax", 0, -1, "400"));
    runs.push_back({"lr=0.01", dir.file("a"), a, "", ""});
    runs.push_back({"lr=0.1", dir.file("b"), b, "", ""});
  }
};

Selector sel(const std::string& lr, const std::string& metric, int layer = -1, int head = -1) {
  Selector s;
  s.run = {{"optim.lr", lr}};
  s.metric = metric;
  s.layer = layer;
  s.head = head;
  return s;
}

ClaimSide side(const Selector& s) {
  ClaimSide c;
  c.sel = s;
  return c;
}

ClaimSide number(double x) {
  ClaimSide c;
  c.is_number = true;
  c.number = x;
  return c;
}

Claim claim(const std::string& id, ClaimSide lhs, CompareOp op, ClaimSide rhs) {
  Claim c;
  c.id = id;
  c.text = "claim " + id;
  c.lhs = std::move(lhs);
  c.op = op;
  c.rhs = std::move(rhs);
  return c;
}

}  // namespace

TEST_CASE("metrics.jsonl: every record kind, non-finite strings, a truncated last line", "[train][claims]") {
  const std::string text = train(1, "3.5") + "{\"step\":1,\"kind\":\"eval\",\"val_loss\":\"inf\"}\n" +
                           probe(1, "zabsmax", 0, 2, "\"nan\"", 3) +
                           "{\"step\":2,\"kind\":\"step\",\"metric\":\"upd_ratio\",\"layer\":-1,\"head\":4,\"index\":-1,\"value\":-0.5}\n" +
                           "{\"step\":3,\"kind\":\"tra";  // killed mid-write
  const RunMetrics m = RunMetrics::parse(text, "m.jsonl");
  REQUIRE(m.rows("loss") != nullptr);
  REQUIRE(m.rows("loss")->at(0).value == 3.5);
  REQUIRE(m.rows("loss")->at(0).kind == 't');
  REQUIRE(m.rows("grad_norm")->at(0).value == 1.5);
  REQUIRE(m.rows("clipped")->at(0).value == 0.0);
  REQUIRE(std::isinf(m.rows("val_loss")->at(0).value));
  const MetricRow& z = m.rows("zabsmax")->at(0);
  REQUIRE((z.layer == 0 && z.head == 2 && z.index == 3 && std::isnan(z.value) && z.kind == 'p'));
  REQUIRE(m.rows("upd_ratio")->at(0).kind == 's');
  REQUIRE(m.rows("upd_ratio")->at(0).head == 4);
  REQUIRE(m.last_probe_step() == 1);
  REQUIRE(m.rows("nothing") == nullptr);

  // A keep filter stores only what was asked for, and still sees the probe steps.
  const RunMetrics k = RunMetrics::parse(text, "m.jsonl", [](std::string_view n) { return n == "loss"; });
  REQUIRE(k.rows("zabsmax") == nullptr);
  REQUIRE(k.rows("loss") != nullptr);
  REQUIRE(k.last_probe_step() == 1);

  // A malformed line in the middle is an error naming the file and line.
  try {
    RunMetrics::parse(train(1, "3.5") + "{\"step\":2,\"kind\":\"probe\",oops}\n" + train(3, "3.0"), "bad.jsonl");
    FAIL("no error");
  } catch (const IoError& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find("bad.jsonl:2") != std::string::npos);
  }
}

TEST_CASE("a run selector matches through the config reader", "[train][claims]") {
  TwoRuns t;
  REQUIRE(match_runs(sel("0.1", "x"), t.runs) == std::vector<size_t>{1});
  REQUIRE(match_runs(sel("1.0e-1", "x"), t.runs) == std::vector<size_t>{1});  // same float
  REQUIRE(match_runs(sel("1e-2", "x"), t.runs) == std::vector<size_t>{0});
  REQUIRE(match_runs(sel("0.3", "x"), t.runs).empty());
  Selector both;
  both.run = {{"train.seed", "11"}};
  REQUIRE(match_runs(both, t.runs).size() == 2);
  Selector two_keys = sel("0.1", "x");
  two_keys.run.push_back({"model.n_layer", "3"});
  REQUIRE(match_runs(two_keys, t.runs).empty());

  // check_claims: zero or several matches, and an unknown key, are errors before anything runs.
  Claim several = claim("several", side(both), CompareOp::kGe, number(1));
  several.lhs.sel.metric = "loss";
  try {
    check_claims({several}, t.runs);
    FAIL("no error");
  } catch (const ClaimError& e) {
    INFO(e.what());
    REQUIRE(std::string(e.what()).find("matches 2 runs") != std::string::npos);
    REQUIRE(std::string(e.what()).find("lr=0.01") != std::string::npos);
  }
  Selector typo = sel("0.1", "loss");
  typo.run = {{"optim.lrr", "0.1"}};
  try {
    check_claims({claim("typo", side(typo), CompareOp::kGe, number(1))}, t.runs);
    FAIL("no error");
  } catch (const ClaimError& e) {
    INFO(e.what());
    const std::string msg = e.what();
    REQUIRE(msg.find("matches no run") != std::string::npos);
    REQUIRE(msg.find("optim.lr") != std::string::npos);  // the config reader's "did you mean"
    REQUIRE(msg.find("lr=0.1") != std::string::npos);    // the runs there are
  }
  Selector all_no_reduce = sel("0.1", "zabsmax");
  all_no_reduce.all_heads = true;
  REQUIRE_THROWS_AS(check_claims({claim("r", side(all_no_reduce), CompareOp::kGe, number(1))}, t.runs), ClaimError);
  REQUIRE_NOTHROW(check_claims({claim("ok", side(sel("0.1", "zabsmax", 0)), CompareOp::kGe, number(1))}, t.runs));
}

TEST_CASE("claims: PASS, FAIL, and a missing metric is an ERROR", "[train][claims]") {
  TwoRuns t;
  Selector ref = sel("0.01", "zabsmax", 0);
  ref.times = 100;
  ref.has_times = true;
  const auto results = evaluate_claims(
      {claim("growth", side(sel("0.1", "zabsmax", 0)), CompareOp::kGe, side(ref)),  // 400 >= 100 x 3.2
       claim("bounded", side(sel("0.1", "zabsmax", 0)), CompareOp::kLt, number(50)),  // 400 < 50
       claim("missing", side(sel("0.01", "rgs_sum", 1)), CompareOp::kLt, number(50)),
       claim("nowhere", side(sel("0.1", "zabsmax", 5)), CompareOp::kLt, number(50))},
      t.runs);
  REQUIRE(results.size() == 4);
  CHECK(results[0].verdict == Verdict::kPass);
  CHECK(results[0].expected == ">= 100 × 3.2 = 320");
  CHECK(results[0].measured == "400");
  CHECK(results[0].lhs.run == "lr=0.1");
  CHECK(results[0].rhs.run == "lr=0.01");
  CHECK(results[1].verdict == Verdict::kFail);
  CHECK(results[1].expected == "< 50");
  CHECK(results[1].measured == "400");
  REQUIRE(results[2].verdict == Verdict::kError);
  INFO(results[2].detail);
  CHECK(results[2].detail.find("rgs_sum") != std::string::npos);
  CHECK(results[2].detail.find(t.dir.file("a")) != std::string::npos);  // the run directory
  CHECK(results[2].detail.find("layer 1") != std::string::npos);        // the selector
  REQUIRE(results[3].verdict == Verdict::kError);
  INFO(results[3].detail);
  CHECK(results[3].detail.find("no record at layer 5") != std::string::npos);
  CHECK(results[3].detail.find("layers 0") != std::string::npos);  // what was recorded
  REQUIRE_FALSE(all_passed(results));
  REQUIRE(all_passed({results[0]}));

  const std::string md = verdict_markdown(results);
  CHECK(md.find("| claim | text | expected | measured | verdict |") != std::string::npos);
  CHECK(md.find("| growth | claim growth | >= 100 × 3.2 = 320 | 400 | PASS |") != std::string::npos);
  CHECK(md.find("| bounded | claim bounded | < 50 | 400 | FAIL |") != std::string::npos);
  CHECK(md.find("**missing** (ERROR)") != std::string::npos);
  const std::string js = verdict_json(results, Json{{"name", "t"}});
  CHECK(js.find("{\"name\":\"t\",\"passed\":false") == 0);
  CHECK(js.find("\"id\":\"growth\"") != std::string::npos);
  CHECK(js.find("\"verdict\":\"ERROR\"") != std::string::npos);
}

TEST_CASE("claims: step selection, reductions over heads, times and plus", "[train][claims]") {
  TwoRuns t;
  auto value = [&](Selector s) {
    ClaimSide c = side(s);
    const auto v = evaluate_side(c, t.runs, [&](size_t r) -> const RunMetrics& {
      static std::map<std::string, RunMetrics> cache;
      auto it = cache.find(t.runs[r].dir);
      if (it == cache.end()) it = cache.emplace(t.runs[r].dir, RunMetrics::read(t.runs[r].dir)).first;
      return it->second;
    });
    INFO(v.error);
    REQUIRE(v.ok);
    return v.value;
  };
  Selector s = sel("0.01", "zabsmax", 0, 0);
  CHECK(value(s) == 3.0);  // last
  s.step = StepPick::kAt;
  s.at_step = 10;
  CHECK(value(s) == 2.0);
  s.step = StepPick::kMin;
  CHECK(value(s) == 2.0);
  s.step = StepPick::kMean;
  CHECK(value(s) == Approx(2.5));
  Selector h = sel("0.01", "zabsmax", 0);
  h.all_heads = true;  // heads 0 and 1; the layer-wide head -1 is not a head
  h.reduce = Reduce::kMean;
  CHECK(value(h) == Approx((3.0 + 3.2) / 2));
  h.reduce = Reduce::kMin;
  h.step = StepPick::kAt;
  h.at_step = 10;
  CHECK(value(h) == 1.0);
  Selector loss = sel("0.01", "loss");
  loss.step = StepPick::kAt;
  loss.at_step = 1;
  loss.times = 0.5;
  loss.has_times = true;
  loss.plus = -1.0;
  loss.has_plus = true;
  CHECK(value(loss) == Approx(3.5 * 0.5 - 1.0));
  CHECK(value(sel("0.01", "val_loss")) == 2.75);

  // A step that was not recorded is an ERROR naming the steps that were.
  Selector at = sel("0.01", "zabsmax", 0, 0);
  at.step = StepPick::kAt;
  at.at_step = 15;
  const auto r = evaluate_claims({claim("at15", side(at), CompareOp::kGe, number(0))}, t.runs);
  REQUIRE(r[0].verdict == Verdict::kError);
  INFO(r[0].detail);
  CHECK(r[0].detail.find("not at step 15") != std::string::npos);

  // NaN never passes a comparison, whichever way it points.
  Selector nan_sel = sel("0.01", "ent_norm", 1, 2);
  const auto n = evaluate_claims({claim("lt", side(nan_sel), CompareOp::kLt, number(1e30)),
                                  claim("ge", side(nan_sel), CompareOp::kGe, number(-1e30))},
                                 t.runs);
  CHECK(n[0].verdict == Verdict::kFail);
  CHECK(n[1].verdict == Verdict::kFail);
  CHECK(n[0].measured == "nan");
}

TEST_CASE("claims on a run that did not finish are ERRORs; an early stop is a note", "[train][claims]") {
  TwoRuns t;
  t.runs[1].problem = "did not finish (incomplete: checkpoint at step 4 of 20)";
  t.runs[0].note = "stopped early: non-finite loss at step 5";
  const auto r = evaluate_claims({claim("b", side(sel("0.1", "zabsmax", 0)), CompareOp::kGe, number(0)),
                                  claim("a", side(sel("0.01", "zabsmax", 0)), CompareOp::kGe, number(0))},
                                 t.runs);
  REQUIRE(r[0].verdict == Verdict::kError);
  CHECK(r[0].detail.find("did not finish") != std::string::npos);
  REQUIRE(r[1].verdict == Verdict::kPass);
  CHECK(r[1].detail.find("non-finite loss at step 5") != std::string::npos);

  // A run without a metrics file.
  fs::remove(t.dir.file("a/metrics.jsonl"));
  t.runs[0].note.clear();
  const auto m = evaluate_claims({claim("a", side(sel("0.01", "loss")), CompareOp::kGe, number(0))}, t.runs);
  REQUIRE(m[0].verdict == Verdict::kError);
  CHECK(m[0].detail.find("metrics.jsonl") != std::string::npos);
}

namespace {

// Two arms (model.v_scale off / learned) x three seeds with known values: paired per-seed comparisons.
struct SeedRuns {
  TempDir dir{"claims-seeds"};
  std::vector<ClaimRun> runs;
  // rgs per (arm, seed); val loss per run
  SeedRuns() {
    const double base_rgs[3] = {8.0, 3.0, 6.0}, vs_rgs[3] = {2.0, 4.0, 1.5};
    for (int arm = 0; arm < 2; ++arm) {
      for (int seed = 0; seed < 3; ++seed) {
        RunConfig c = tiny_run_config();
        c.train.seed = uint64_t(seed);
        c.model.v_scale = arm == 0 ? VScaleMode::kOff : VScaleMode::kLearned;
        const std::string name = std::string(arm == 0 ? "off" : "learned") + "-s" + std::to_string(seed);
        fs::create_directories(dir.file(name));
        const double rgs = arm == 0 ? base_rgs[seed] : vs_rgs[seed];
        const std::string v = std::to_string(rgs), init = std::to_string(3.0 + seed);
        dir.write(name + "/metrics.jsonl", train(1, arm == 0 ? "5.0" : "5.5") + probe(0, "rgs_median", -1, -1, init.c_str()) +
                                               probe(100, "rgs_median", -1, -1, v.c_str()) +
                                               "{\"step\":100,\"kind\":\"eval\",\"val_loss\":" +
                                               std::to_string(2.0 + 0.5 * seed + 0.1 * arm) + "}\n");
        runs.push_back({name, dir.file(name), c, "", ""});
      }
    }
  }
};

Selector arm(const char* mode, const char* metric) {
  Selector s;
  s.run = {{"model.v_scale", mode}};
  s.metric = metric;
  return s;
}

Claim over_seeds(Claim c) {
  c.over = "train.seed";
  return c;
}

}  // namespace

TEST_CASE("claims over seeds: paired per-seed comparisons, counts and require", "[train][claims]") {
  SeedRuns t;
  REQUIRE(axis_values("train.seed", t.runs) == std::vector<std::string>{"0", "1", "2"});
  REQUIRE(axis_values("model.v_scale", t.runs) == std::vector<std::string>{"off", "learned"});
  // V-scale below baseline: seeds 0 (2 < 8) and 2 (1.5 < 6) pass, seed 1 (4 < 3) fails.
  Claim c = over_seeds(claim("flat", side(arm("learned", "rgs_median")), CompareOp::kLt, side(arm("off", "rgs_median"))));
  REQUIRE_NOTHROW(check_claims({c}, t.runs));  // each seed's selectors match exactly one run
  auto r = evaluate_claims({c}, t.runs);
  REQUIRE(r[0].points.size() == 3);
  CHECK(r[0].passed == 2);
  CHECK(r[0].verdict == Verdict::kFail);  // require: all
  INFO(r[0].measured);
  CHECK(r[0].measured == "2 of 3 pass (train.seed 0: 2 vs 8 PASS; 1: 4 vs 3 FAIL; 2: 1.5 vs 6 PASS)");
  CHECK(r[0].expected == "< the rhs in all 3 values of train.seed");
  CHECK(r[0].points[1].verdict == Verdict::kFail);
  CHECK(r[0].points[1].lhs.run == "learned-s1");
  CHECK(r[0].points[1].rhs.run == "off-s1");
  c.require = Require::kMajority;
  CHECK(evaluate_claims({c}, t.runs)[0].verdict == Verdict::kPass);
  c.require = Require::kAtLeast;
  c.require_n = 3;
  CHECK(evaluate_claims({c}, t.runs)[0].verdict == Verdict::kFail);
  c.require_n = 2;
  CHECK(evaluate_claims({c}, t.runs)[0].verdict == Verdict::kPass);
  c.require = Require::kAny;
  CHECK(evaluate_claims({c}, t.runs)[0].verdict == Verdict::kPass);
  c.require_n = 4;
  c.require = Require::kAtLeast;
  CHECK_THROWS_AS(check_claims({c}, t.runs), ClaimError);  // more than there are seeds

  // Explicit values, and a value with no run is an ERROR before and after running.
  Claim some = over_seeds(claim("some", side(arm("learned", "rgs_median")), CompareOp::kLt, number(5)));
  some.over_values = {"0", "2"};
  r = evaluate_claims({some}, t.runs);
  CHECK(r[0].passed == 2);
  CHECK(r[0].verdict == Verdict::kPass);
  some.over_values = {"0", "7"};
  CHECK_THROWS_AS(check_claims({some}, t.runs), ClaimError);
  r = evaluate_claims({some}, t.runs);
  CHECK(r[0].verdict == Verdict::kError);
  CHECK(r[0].detail.find("train.seed=7") != std::string::npos);

  // A step-0 comparison inside the same run (the "rises above its own init" form).
  Selector init = arm("off", "rgs_median");
  init.step = StepPick::kAt;
  init.at_step = 0;
  r = evaluate_claims({over_seeds(claim("grows", side(arm("off", "rgs_median")), CompareOp::kGt, side(init)))}, t.runs);
  CHECK(r[0].measured == "2 of 3 pass (train.seed 0: 8 vs 3 PASS; 1: 3 vs 4 FAIL; 2: 6 vs 5 PASS)");
  const std::string js = verdict_json(r, {});
  CHECK(js.find("\"over\":\"train.seed\",\"passed_count\":2,\"points\":[{\"value\":\"0\",\"verdict\":\"PASS\"") != std::string::npos);
}

TEST_CASE("claims: ratios and differences between arms, reductions over seeds and over runs", "[train][claims]") {
  SeedRuns t;
  ClaimSide ratio;
  ratio.combine = Combine::kDiv;
  ratio.args = {side(arm("off", "rgs_median")), side(arm("learned", "rgs_median"))};
  // Per seed: 8/2 = 4, 3/4 = 0.75, 6/1.5 = 4.
  Claim cut = over_seeds(claim("cut", ratio, CompareOp::kGe, number(2)));
  auto r = evaluate_claims({cut}, t.runs);
  CHECK(r[0].measured == "2 of 3 pass (train.seed 0: 4 PASS; 1: 0.75 FAIL; 2: 4 PASS)");
  // Reduced over seeds first: the median of [4, 0.75, 4] is 4; the mean 2.917; the min 0.75.
  cut.over_reduce = Reduce::kMedian;
  r = evaluate_claims({cut}, t.runs);
  CHECK(r[0].verdict == Verdict::kPass);
  CHECK(r[0].lhs.value == Approx(4.0));
  CHECK(r[0].measured == "median over train.seed of [4, 0.75, 4] = 4");
  cut.over_reduce = Reduce::kMean;
  CHECK(evaluate_claims({cut}, t.runs)[0].lhs.value == Approx((4.0 + 0.75 + 4.0) / 3));
  cut.over_reduce = Reduce::kMin;
  CHECK(evaluate_claims({cut}, t.runs)[0].verdict == Verdict::kFail);

  // |a - b| / b: the relative validation-loss gap, 0.1 / (2 + 0.5 s).
  ClaimSide gap;
  gap.combine = Combine::kAbsDiff;
  gap.args = {side(arm("learned", "val_loss")), side(arm("off", "val_loss"))};
  ClaimSide rel;
  rel.combine = Combine::kDiv;
  rel.args = {gap, side(arm("off", "val_loss"))};
  r = evaluate_claims({over_seeds(claim("loss", rel, CompareOp::kLe, number(0.045)))}, t.runs);
  REQUIRE(r[0].points.size() == 3);
  CHECK(r[0].points[0].lhs.value == Approx(0.05));
  CHECK(r[0].points[2].lhs.value == Approx(0.1 / 3.0));
  CHECK(r[0].passed == 2);
  ClaimSide sub;
  sub.combine = Combine::kSub;
  sub.args = {side(arm("off", "rgs_median")), number(1)};
  sub.times = 2;
  sub.has_times = true;
  r = evaluate_claims({over_seeds(claim("sub", sub, CompareOp::kGe, number(0)))}, t.runs);
  CHECK(r[0].points[0].lhs.value == Approx(14.0));  // 2 x (8 - 1)

  // across: several runs reduced; sensitivity = mean over runs of min(v, cap) - min v.
  Selector all_off = arm("off", "val_loss");
  CHECK_THROWS_AS(check_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs), ClaimError);
  all_off.across = Across::kMedian;
  REQUIRE_NOTHROW(check_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs));
  r = evaluate_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs);
  CHECK(r[0].lhs.value == Approx(2.5));  // [2.0, 2.5, 3.0]
  CHECK(r[0].measured == "median over 3 runs = 2.5");
  all_off.across = Across::kMin;
  CHECK(evaluate_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs)[0].lhs.value == Approx(2.0));
  all_off.across = Across::kSensitivity;  // caps: the first train loss, 5.0: mean(0, 0.5, 1.0) = 0.5
  CHECK(evaluate_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs)[0].lhs.value == Approx(0.5));
  all_off.cap_metric = "nope";
  CHECK(evaluate_claims({claim("x", side(all_off), CompareOp::kGe, number(0))}, t.runs)[0].verdict == Verdict::kError);
}

namespace {
std::string event(int step, const char* kind) {
  return "{\"step\":" + std::to_string(step) + ",\"kind\":\"" + kind +
         "\",\"layer\":-1,\"head\":-1,\"metric\":\"grad_depth_ratio_params\",\"value\":0.01,\"threshold\":10,"
         "\"message\":\"m\"}\n";
}
}  // namespace

TEST_CASE("events.jsonl: counts per kind as events.<kind>, 0 when absent; claims over them", "[train][claims]") {
  TwoRuns t;  // run a has events.jsonl, run b has none (a finished run without events)
  t.dir.write("a/events.jsonl", event(5, "grad_vanishing") + event(30, "grad_vanishing") +
                                    "{\"step\":31,\"kind\":\"resume\",\"message\":\"from step 30\"}\n" +
                                    event(40, "some_new_kind") + "{\"step\":41,\"ki");  // killed mid-write
  const RunMetrics a = RunMetrics::read(t.dir.file("a"));
  REQUIRE(a.rows("events.grad_vanishing") != nullptr);
  REQUIRE(a.rows("events.grad_vanishing")->size() == 1);
  const MetricRow& r = a.rows("events.grad_vanishing")->at(0);
  CHECK(r.value == 2.0);
  CHECK(r.kind == 'v');
  CHECK((r.layer == -1 && r.head == -1 && r.index == -1));
  CHECK(r.step == 40);  // the last step of the run, here an event's (metrics end at 20)
  CHECK(a.rows("events.resume")->at(0).value == 1.0);
  CHECK(a.rows("events.some_new_kind")->at(0).value == 1.0);  // a kind outside the list, counted
  CHECK(a.rows("events.grad_explosion")->at(0).value == 0.0);  // a known kind that never fired
  const RunMetrics b = RunMetrics::read(t.dir.file("b"));
  for (const std::string& k : known_event_kinds()) {
    INFO(k);
    REQUIRE(b.rows("events." + k) != nullptr);
    CHECK(b.rows("events." + k)->at(0).value == 0.0);
  }
  CHECK(b.rows("events.grad_vanishing")->at(0).step == 20);  // the last metrics step
  CHECK(b.rows("events.some_new_kind") == nullptr);
  // A keep filter applies to the counts too; a missing metrics file means no counts at all.
  const RunMetrics k = RunMetrics::read(t.dir.file("a"), [](std::string_view n) { return n == "loss"; });
  CHECK(k.rows("events.grad_vanishing") == nullptr);
  CHECK(RunMetrics::read(t.dir.file("nowhere")).rows("events.grad_vanishing") == nullptr);
  // parse() gives zero counts; add_events replaces them.
  RunMetrics p = RunMetrics::parse(train(3, "3.0"), "m.jsonl");
  CHECK(p.rows("events.grad_explosion")->at(0).value == 0.0);
  p.add_events(event(2, "grad_explosion") + event(4, "grad_explosion") + event(4, "odd"), "e.jsonl");
  CHECK(p.rows("events.grad_explosion")->at(0).value == 2.0);
  CHECK(p.rows("events.grad_explosion")->at(0).step == 4);
  p.add_events("", "e.jsonl");
  CHECK(p.rows("events.grad_explosion")->at(0).value == 0.0);
  CHECK(p.rows("events.odd") == nullptr);

  // Claims: fired on a, not on b; a typo is an ERROR (absent metric), not a silent 0.
  Selector fired = sel("0.01", "events.grad_vanishing"), quiet = sel("0.1", "events.grad_vanishing");
  Selector typo = sel("0.1", "events.grad_vanishng");
  Selector ev = quiet;
  ev.kind = "event";
  const auto results = evaluate_claims({claim("fired", side(fired), CompareOp::kGe, number(1)),
                                        claim("quiet", side(quiet), CompareOp::kLt, number(1)),
                                        claim("quiet-fails", side(quiet), CompareOp::kGe, number(1)),
                                        claim("typo", side(typo), CompareOp::kLt, number(1)),
                                        claim("kind", side(ev), CompareOp::kLt, number(1))},
                                       t.runs);
  CHECK(results[0].verdict == Verdict::kPass);
  CHECK(results[0].measured == "2");
  CHECK(results[1].verdict == Verdict::kPass);
  CHECK(results[2].verdict == Verdict::kFail);
  CHECK(results[3].verdict == Verdict::kError);
  CHECK(results[4].verdict == Verdict::kPass);

  // A malformed line in the middle is an IoError naming the file and line.
  t.dir.write("b/events.jsonl", event(5, "grad_vanishing") + "{\"step\":\"six\",\"kind\":\"x\"}\n" + event(7, "x"));
  try {
    RunMetrics::read(t.dir.file("b"));
    FAIL("no error");
  } catch (const IoError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("events.jsonl:2") != std::string::npos);
  }
  t.dir.write("b/events.jsonl", "{\"step\":3}\n");  // no kind
  CHECK_THROWS_AS(RunMetrics::read(t.dir.file("b")), IoError);
}
