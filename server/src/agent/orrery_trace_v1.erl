%% Orrery's call tracer on the target node, loaded with the agent and removed with it.
%% Traces the calls of chosen functions (arguments and return values) into a relay
%% process that keeps the last few per function. Bounded like recon/redbug: past a total
%% count or a rate it switches tracing off by itself and says why.
%%
%% Where the node has trace sessions (OTP 27+) the relay traces in a session of its own
%% (orrery_trace_v1, held by the guard): every process, every chosen function, and
%% nothing the user's dbg, recon_trace or redbug set is seen or touched. Without sessions
%% (OTP 25, 26) a process has one tracer and a function one call trace pattern, so the
%% relay becomes the tracer of the processes that have none (and of new processes when
%% nobody set flags for those), sets a pattern only on a function nobody else traces, and
%% takes back exactly what it set: its own flags, and a pattern only while it is still
%% the one it set. A tracer started later cannot trace the processes the relay holds
%% until tracing stops (the hover says so).
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_trace_v1).
-export([start/4, stop/3, stop_all/0, info/0, relay/1]).

%% Trace Mod:Fun/Arity. Limits: #{max => total messages, rate => per second}.
start(Mod, Fun, Arity, Limits) ->
    ask(relay_pid(Limits), {add, {Mod, Fun, Arity}}).

stop(Mod, Fun, Arity) ->
    case whereis(orrery_trace_v1) of
        undefined -> ok;
        R -> ask(R, {remove, {Mod, Fun, Arity}})
    end.

stop_all() ->
    case whereis(orrery_trace_v1) of
        undefined -> ok;
        R ->
            Ref = monitor(process, R),
            R ! stop,
            receive {'DOWN', Ref, _, _, _} -> ok after 5000 -> exit(R, kill), ok end
    end,
    %% Whatever happened to the relay, its session goes.
    try orrery_guard_v1:end_session(orrery_trace_v1) catch _:_ -> ok end,
    ok.

%% #{ {M, F, A} => #{calls => [#{args, result, pid, time}], stopped => Reason | nil,
%%                   shared => true when tracing shares the node's one tracer per process} }
info() ->
    case whereis(orrery_trace_v1) of
        undefined -> #{};
        R ->
            Ref = make_ref(),
            R ! {info, self(), Ref},
            receive {Ref, I} -> I after 5000 -> #{} end
    end.

ask(R, Msg) ->
    Ref = monitor(process, R),
    R ! {Msg, self(), Ref},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, Why} -> {error, {relay_down, Why}}
    after 10000 -> demonitor(Ref, [flush]), {error, timeout}
    end.

relay_pid(Limits) ->
    case whereis(orrery_trace_v1) of
        undefined ->
            Parent = self(),
            P = spawn(fun() ->
                              register(orrery_trace_v1, self()),
                              Parent ! {orrery_trace_v1, ready},
                              Mode = case orrery_guard_v1:session(orrery_trace_v1, self()) of
                                         none -> legacy;
                                         S -> {session, S}
                                     end,
                              relay(#{limits => Limits, funs => #{}, pending => #{}, count => 0,
                                      window => {erlang:monotonic_time(second), 0},
                                      stopped => nil, mode => Mode, mine => #{},
                                      flagged => false, new => false})
                      end),
            receive {orrery_trace_v1, ready} -> P after 5000 -> P end;
        P -> P
    end.

small(T) ->
    orrery_agent_v1:trunc(T, #{depth => 4, items => 10, binary => 120, budget => 300}).

spec() -> [{'_', [], [{return_trace}]}].

relay(S = #{funs := Funs, pending := Pend}) ->
    receive
        {{add, MFA}, From, Ref} ->
            S2 = flags(pattern_on(MFA, S#{funs := Funs#{MFA => maps:get(MFA, Funs, [])},
                                          stopped := nil})),
            From ! {Ref, ok},
            relay(S2);
        {{remove, MFA}, From, Ref} ->
            S2 = pattern_off(MFA, S),
            Funs2 = maps:remove(MFA, Funs),
            S3 = case map_size(Funs2) of
                     0 -> off(S2#{funs := Funs2});
                     _ -> S2#{funs := Funs2}
                 end,
            From ! {Ref, ok},
            relay(S3);
        {trace, Pid, call, {M, F, Args}} ->
            S2 = count(S),
            Key = {Pid, {M, F, length(Args)}},
            relay(S2#{pending := Pend#{Key => [{small(Args), erlang:system_time(microsecond)} | maps:get(Key, Pend, [])]}});
        {trace, Pid, return_from, {M, F, A}, Ret} ->
            S2 = count(S),
            Key = {Pid, {M, F, A}},
            case maps:get(Key, Pend, []) of
                [{Args, T} | Rest] ->
                    Us = erlang:system_time(microsecond) - T,
                    Call = #{args => Args, result => small(Ret), pid => Pid, time => T, us => Us},
                    Old = maps:get({M, F, A}, Funs, []),
                    relay(S2#{pending := Pend#{Key => Rest},
                              funs := Funs#{{M, F, A} => lists:sublist([Call | Old], 5)}});
                [] -> relay(S2)
            end;
        {info, From, Ref} ->
            Shared = maps:get(mode, S) =:= legacy,
            From ! {Ref, maps:map(fun(_, Calls) -> #{calls => Calls, stopped => maps:get(stopped, S),
                                                     shared => Shared}
                                  end, Funs)},
            relay(S);
        stop ->
            S2 = off(S),
            _ = [pattern_off(MFA, S2) || MFA <- maps:keys(Funs)],
            case maps:get(mode, S) of
                {session, _} -> orrery_guard_v1:end_session(orrery_trace_v1);
                legacy -> ok
            end,
            ok;
        _ -> relay(S)
    end.

%% Count a trace message; past the limits switch tracing off and remember why.
count(S = #{count := C, limits := L, window := {Sec, N}}) ->
    Max = maps:get(max, L, 10000),
    Rate = maps:get(rate, L, 1000),
    Now = erlang:monotonic_time(second),
    {Win, N2} = case Now of Sec -> {Sec, N + 1}; _ -> {Now, 1} end,
    S2 = S#{count := C + 1, window := {Win, N2}},
    if
        C + 1 >= Max -> (off(S2))#{stopped := <<"stopped after the message limit">>};
        N2 > Rate -> (off(S2))#{stopped := <<"stopped: more than the rate limit of calls per second">>};
        true -> S2
    end.

%% The call trace pattern of MFA on. Without sessions, only where nobody else has one
%% (theirs keeps working: the relay gets what their match spec sends).
pattern_on(MFA, S = #{mode := {session, Sess}}) ->
    _ = try erlang:apply(trace, function, [Sess, MFA, spec(), [local]]) catch _:_ -> 0 end,
    S;
pattern_on(MFA, S = #{mine := Mine}) ->
    case maps:is_key(MFA, Mine) orelse erlang:trace_info(MFA, traced) =:= {traced, false} of
        true ->
            _ = try erlang:trace_pattern(MFA, spec(), [local]) catch _:_ -> 0 end,
            S#{mine := Mine#{MFA => true}};
        false -> S
    end.

pattern_off(MFA, S = #{mode := {session, Sess}}) ->
    _ = try erlang:apply(trace, function, [Sess, MFA, false, [local]]) catch _:_ -> 0 end,
    S;
pattern_off(MFA, S = #{mine := Mine}) ->
    case maps:is_key(MFA, Mine) of
        true ->
            %% Only while it is still ours (someone may have set theirs since).
            case erlang:trace_info(MFA, match_spec) =:= {match_spec, spec()} of
                true -> _ = try erlang:trace_pattern(MFA, false, [local]) catch _:_ -> 0 end;
                false -> ok
            end,
            S#{mine := maps:remove(MFA, Mine)};
        false -> S
    end.

%% The call flag on: in the session every process (and new ones); without sessions the
%% processes that have no tracer, and new ones when nobody set flags for those.
flags(S = #{flagged := true}) -> S;
flags(S = #{mode := {session, Sess}}) ->
    _ = try erlang:apply(trace, process, [Sess, all, true, [call]]) catch _:_ -> 0 end,
    S#{flagged := true};
flags(S) ->
    Me = self(),
    New = case erlang:trace_info(new, tracer) of
              {tracer, []} ->
                  try erlang:trace(new_processes, true, [call, {tracer, Me}]), true
                  catch _:_ -> false
                  end;
              _ -> false
          end,
    [try erlang:trace(P, true, [call, {tracer, Me}]) catch _:_ -> ok end
     || P <- erlang:processes(), P =/= Me, erlang:trace_info(P, tracer) =:= {tracer, []}],
    S#{flagged := true, new := New}.

%% The call flag off where this relay set it, nowhere else.
off(S = #{mode := {session, Sess}}) ->
    _ = try erlang:apply(trace, process, [Sess, all, false, [call]]) catch _:_ -> 0 end,
    S#{flagged := false};
off(S = #{new := New}) ->
    Me = self(),
    case New andalso erlang:trace_info(new, tracer) =:= {tracer, Me} of
        true -> try erlang:trace(new_processes, false, [call]) catch _:_ -> ok end;
        false -> ok
    end,
    [try erlang:trace(P, false, [call]) catch _:_ -> ok end
     || P <- erlang:processes(), P =/= Me, erlang:trace_info(P, tracer) =:= {tracer, Me}],
    S#{flagged := false, new := false}.
