%% Orrery's mean call times (the liveCallTime setting), loaded with the agent and removed
%% with it. call_time only counts for processes that carry the `call` trace flag.
%% Where the node has trace sessions (OTP 27+), the sink process owned by this module is
%% the tracer of Orrery's own session (orrery_calltime_v1, held by the guard): every
%% process carries the flag there, and nothing another tracer set is seen or touched.
%% Without sessions (OTP 25, 26) a process has one tracer at most, so the sink becomes the
%% tracer of the processes that have no tracer yet (and of new ones), never of a process
%% someone else traces. Either way stop/0 undoes exactly what was set, and so does the
%% sink by itself when Orrery's node goes away.
%% Without sessions the sink forwards trace messages to Orrery's call tracer
%% (orrery_trace_v1) when that runs, so "Trace calls" keeps seeing calls of the processes
%% flagged here.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_calltime_v1).
-export([sync/2, stop/0, times/1, sink/2]).

%% Count call times for exactly Mods (loaded ones; others are tried again next time).
%% Returns times(Mods). Owner: Orrery's node.
sync([], _Owner) ->
    stop(),
    #{};
sync(Mods, Owner) ->
    Sink = sink_pid(Owner),
    case ask(Sink, {sync, Mods}) of
        Times when is_map(Times) -> Times;
        _ -> #{}
    end.

%% Undo everything: patterns, flags, the sink. ok.
stop() ->
    case whereis(orrery_calltime_v1) of
        undefined -> ok;
        Sink -> _ = ask(Sink, stop)
    end,
    %% Whatever happened to the sink, its session goes.
    try orrery_guard_v1:end_session(orrery_calltime_v1) catch _:_ -> ok end,
    ok.

ask(Sink, Msg) ->
    Ref = monitor(process, Sink),
    Sink ! {Msg, self(), Ref},
    receive
        {Ref, R} -> demonitor(Ref, [flush]), R;
        {'DOWN', Ref, _, _, _} -> ok
    after 15000 -> demonitor(Ref, [flush]), timeout
    end.

%% #{Mod => #{{F, A} => {Calls, Microseconds}}} summed over processes.
times(Mods) ->
    Sess = orrery_guard_v1:session_of(orrery_calltime_v1),
    Read = case orrery_guard_v1:sessions() of
               false -> fun(MFA) -> erlang:trace_info(MFA, call_time) end;
               true when Sess =:= none -> fun(_) -> false end;
               true -> fun(MFA) -> erlang:apply(trace, info, [Sess, MFA, call_time]) end
           end,
    maps:from_list([{M, fun_times(M, Read)} || M <- Mods, code:is_loaded(M) =/= false]).

fun_times(M, Read) ->
    lists:foldl(fun({F, A}, Acc) ->
                        case Read({M, F, A}) of
                            {call_time, L} when is_list(L) ->
                                {C, Us} = lists:foldl(fun({_, N, S, U}, {CA, UA}) ->
                                                              {CA + N, UA + S * 1000000 + U}
                                                      end, {0, 0}, L),
                                Acc#{{F, A} => {C, Us}};
                            _ -> Acc
                        end
                end, #{}, erlang:get_module_info(M, functions)).

sink_pid(Owner) ->
    case whereis(orrery_calltime_v1) of
        undefined ->
            Parent = self(),
            P = spawn(fun() ->
                              register(orrery_calltime_v1, self()),
                              Parent ! {orrery_calltime_v1, ready},
                              sink(Owner, #{mods => [], flagged => false, new => false})
                      end),
            receive {orrery_calltime_v1, ready} -> P after 5000 -> P end;
        P -> P
    end.

sink(Owner, S) ->
    erlang:monitor_node(Owner, true),
    Mode = case orrery_guard_v1:session(orrery_calltime_v1, self()) of
               none -> legacy;
               Sess -> {session, Sess}
           end,
    loop(Owner, S#{mode => Mode}).

loop(Owner, S) ->
    receive
        {{sync, Mods}, From, Ref} ->
            S2 = patterns(Mods, flags(S)),
            From ! {Ref, times(Mods)},
            loop(Owner, S2);
        {stop, From, Ref} ->
            undo(S),
            From ! {Ref, ok};
        {nodedown, Owner} ->
            undo(S);
        T when element(1, T) =:= trace; element(1, T) =:= trace_ts ->
            case whereis(orrery_trace_v1) of
                undefined -> ok;
                Relay -> Relay ! T
            end,
            loop(Owner, S);
        _ ->
            loop(Owner, S)
    end.

%% In the session: the call flag on every process, and new ones. Without sessions: on
%% every process without a tracer, and on new processes when nobody else set flags for
%% those; done again when someone cleared them (trace(all, false, ..)).
flags(S = #{mode := {session, _}, flagged := true}) -> S;
flags(S = #{mode := {session, Sess}}) ->
    _ = try erlang:apply(trace, process, [Sess, all, true, [call]]) catch _:_ -> 0 end,
    S#{flagged := true};
flags(S = #{flagged := true, new := New}) ->
    case New andalso erlang:trace_info(new, tracer) =/= {tracer, self()} of
        true -> flags(S#{flagged := false, new := false});
        false -> S
    end;
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
     || P <- erlang:processes(), P =/= Me,
        erlang:trace_info(P, tracer) =:= {tracer, []}],
    S#{flagged := true, new := New}.

%% call_time on for Mods, off for the modules no longer wanted; set again for a module
%% whose code was reloaded (that drops its patterns).
patterns(Mods, S = #{mods := Had}) ->
    [try pattern(S, {M, '_', '_'}, false) catch _:_ -> ok end
     || M <- Had, not lists:member(M, Mods)],
    On = [M || M <- Mods, code:is_loaded(M) =/= false,
               (lists:member(M, Had) andalso is_on(S, M))
                   orelse pattern(S, {M, '_', '_'}, true) > 0],
    S#{mods := On}.

pattern(#{mode := {session, Sess}}, MFA, On) ->
    erlang:apply(trace, function, [Sess, MFA, On, [call_time]]);
pattern(_, MFA, On) ->
    erlang:trace_pattern(MFA, On, [call_time]).

is_on(S, M) ->
    MFA = {M, module_info, 0},
    R = try
            case maps:get(mode, S) of
                {session, Sess} -> erlang:apply(trace, info, [Sess, MFA, call_time]);
                legacy -> erlang:trace_info(MFA, call_time)
            end
        catch _:_ -> error
        end,
    case R of
        {call_time, L} when is_list(L) -> true;
        _ -> false
    end.

%% The session goes, and with it its patterns and flags.
undo(#{mode := {session, _}}) ->
    orrery_guard_v1:end_session(orrery_calltime_v1);
undo(#{mods := Mods, new := New}) ->
    Me = self(),
    [try erlang:trace_pattern({M, '_', '_'}, false, [call_time]) catch _:_ -> ok end
     || M <- Mods],
    case New andalso erlang:trace_info(new, tracer) =:= {tracer, Me} of
        true -> try erlang:trace(new_processes, false, [call]) catch _:_ -> ok end;
        false -> ok
    end,
    [try erlang:trace(P, false, [call]) catch _:_ -> ok end
     || P <- erlang:processes(), P =/= Me,
        erlang:trace_info(P, tracer) =:= {tracer, Me}],
    ok.
