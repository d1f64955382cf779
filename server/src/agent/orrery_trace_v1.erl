%% Orrery's call tracer on the target node, loaded with the agent and removed with it.
%% Traces the calls of chosen functions (arguments and return values) into a relay
%% process that keeps the last few per function. Bounded like recon/redbug: past a total
%% count or a rate it switches tracing off by itself and says why.
%% Keep this file ASCII only.
-module(orrery_trace_v1).
-export([start/4, stop/3, stop_all/0, info/0, relay/1]).

%% Trace Mod:Fun/Arity. Limits: #{max => total messages, rate => per second}.
start(Mod, Fun, Arity, Limits) ->
    Relay = relay_pid(Limits),
    Relay ! {add, {Mod, Fun, Arity}},
    erlang:trace_pattern({Mod, Fun, Arity}, [{'_', [], [{return_trace}]}], [local]),
    erlang:trace(all, true, [call, {tracer, Relay}]),
    ok.

stop(Mod, Fun, Arity) ->
    erlang:trace_pattern({Mod, Fun, Arity}, false, [local]),
    case whereis(orrery_trace_v1) of
        undefined -> ok;
        R -> R ! {remove, {Mod, Fun, Arity}}, ok
    end.

stop_all() ->
    case whereis(orrery_trace_v1) of
        undefined -> ok;
        R ->
            Ref = monitor(process, R),
            R ! stop,
            receive {'DOWN', Ref, _, _, _} -> ok after 5000 -> exit(R, kill), ok end
    end.

%% #{ {M, F, A} => #{calls => [#{args, result, pid, time}], stopped => Reason | nil} }
info() ->
    case whereis(orrery_trace_v1) of
        undefined -> #{};
        R ->
            Ref = make_ref(),
            R ! {info, self(), Ref},
            receive {Ref, I} -> I after 5000 -> #{} end
    end.

relay_pid(Limits) ->
    case whereis(orrery_trace_v1) of
        undefined ->
            Parent = self(),
            P = spawn(fun() ->
                              register(orrery_trace_v1, self()),
                              Parent ! {orrery_trace_v1, ready},
                              relay(#{limits => Limits, funs => #{}, pending => #{}, count => 0,
                                      window => {erlang:monotonic_time(second), 0},
                                      stopped => nil})
                      end),
            receive {orrery_trace_v1, ready} -> P after 5000 -> P end;
        P -> P
    end.

small(T) ->
    orrery_agent_v1:trunc(T, #{depth => 4, items => 10, binary => 120, budget => 300}).

relay(S = #{funs := Funs, pending := Pend}) ->
    receive
        {add, MFA} ->
            relay(S#{funs := Funs#{MFA => maps:get(MFA, Funs, [])}, stopped := nil});
        {remove, MFA} ->
            Funs2 = maps:remove(MFA, Funs),
            case map_size(Funs2) of
                0 -> off(), relay(S#{funs := Funs2});
                _ -> relay(S#{funs := Funs2})
            end;
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
            From ! {Ref, maps:map(fun(_, Calls) -> #{calls => Calls, stopped => maps:get(stopped, S)} end, Funs)},
            relay(S);
        stop ->
            off(),
            [try erlang:trace_pattern(MFA, false, [local]) catch _:_ -> ok end
             || MFA <- maps:keys(Funs)],
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
        C + 1 >= Max -> off(), S2#{stopped := <<"stopped after the message limit">>};
        N2 > Rate -> off(), S2#{stopped := <<"stopped: more than the rate limit of calls per second">>};
        true -> S2
    end.

off() ->
    try erlang:trace(all, false, [call]) catch _:_ -> ok end,
    ok.
